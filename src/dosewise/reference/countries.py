"""ISO 3166 codes and names (``pycountry``) and World Bank income level and UN M49 region
(OCHA countries & territories taxonomy shipped in ``hdx-python-country``, read offline).

Importing ``hdx.location.country`` and parsing its taxonomy takes about 0.4 s, and
``pycountry`` another 0.07 s; the few fields used here are therefore read from both packages
once and kept in a compact JSON file in the user cache (see :mod:`dosewise.reference._cache`),
keyed by both packages' versions. Later processes read that file (about a millisecond) and
import neither package.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dosewise.errors import InputError
from dosewise.reference._cache import cached_json, version

# Codes in common use that ISO 3166-1 does not assign (user-assigned range).
_USER_ASSIGNED = {"XKX": "Kosovo"}
# Income levels where the OCHA taxonomy has none. Kosovo: World Bank FY2021 "Upper middle
# income" (World Bank country and lending groups, July 2020).
_INCOME_FILL = {"XKX": "Upper middle"}
_REGION_FILL = {"XKX": ("Europe", "Southern Europe")}  # UN M49 places Kosovo (under UNSCR 1244) with Serbia
INCOME_LEVELS = ("Low", "Lower middle", "Upper middle", "High")

_FIELDS = ("iso2", "common_name", "name", "preferred_term", "income_level", "region", "subregion")
"""Per ISO3 code in the cached table, in this order (``None`` where a source has nothing)."""


@dataclass(frozen=True, slots=True)
class CountryInfo:
    iso3: str
    iso2: str | None
    name: str
    income_level: str | None
    region: str | None
    subregion: str | None


def _read_sources() -> dict[str, list[str | None]]:
    """Every ISO 3166-1 country (pycountry) with the hdx taxonomy's fields where it has them."""
    import pycountry
    from hdx.location.country import Country

    hdx: dict[str, dict[str, str | None]] = dict(Country.countriesdata(use_live=False)["countries"].items())
    out: dict[str, list[str | None]] = {}
    for rec in pycountry.countries:
        code = str(rec.alpha_3)
        h = hdx.get(code, {})
        out[code] = [getattr(rec, "alpha_2", None), getattr(rec, "common_name", None), str(rec.name),
                     h.get("Preferred Term"), h.get("World Bank Income Level"), h.get("Region Name"),
                     h.get("Sub-region Name")]
    for code in _USER_ASSIGNED:  # not in ISO 3166-1, but the taxonomy may have them
        h = hdx.get(code, {})
        out[code] = [None, None, None, h.get("Preferred Term"), h.get("World Bank Income Level"),
                     h.get("Region Name"), h.get("Sub-region Name")]
    return out


@functools.cache
def _table() -> dict[str, tuple[str | None, ...]]:
    key = f"pycountry {version('pycountry')}; hdx-python-country {version('hdx-python-country')}"
    data = cached_json("countries", key, _read_sources)
    return {code: tuple(row) for code, row in data.items()}


def iso3_codes() -> frozenset[str]:
    """Every code :func:`validate_iso3` accepts (ISO 3166-1 alpha-3 plus user-assigned XKX)."""
    return frozenset(_table())


def validate_iso3(code: str, *, file: str | None = None, field: str | None = None) -> str:
    """Return the upper-case ISO3 code or raise an :class:`InputError` naming the bad value."""
    up = code.strip().upper() if isinstance(code, str) else code
    if isinstance(up, str) and up in _table():
        return up
    raise InputError("unknown ISO 3166-1 alpha-3 code", file=file, field=field, value=code)


@functools.cache
def country_info(iso3: str) -> CountryInfo:
    code = validate_iso3(iso3)
    row = _table().get(code)
    iso2, common_name, iso_name, preferred, income, region, subregion = row or (None,) * len(_FIELDS)
    name = _USER_ASSIGNED.get(code) or common_name or preferred or iso_name
    return CountryInfo(
        iso3=code,
        iso2=iso2 or ("XK" if code == "XKX" else None),
        name=str(name),
        income_level=income or _INCOME_FILL.get(code),
        region=region or _REGION_FILL.get(code, (None, None))[0],
        subregion=subregion or _REGION_FILL.get(code, (None, None))[1],
    )


def country_name(iso3: str) -> str:
    return country_info(iso3).name
