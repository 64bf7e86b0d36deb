"""ISO 3166 codes and names (``pycountry``) and World Bank income level and UN M49 region
(OCHA countries & territories taxonomy shipped in ``hdx-python-country``, read offline).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pycountry

from dosewise.errors import InputError

# Codes in common use that ISO 3166-1 does not assign (user-assigned range).
_USER_ASSIGNED = {"XKX": "Kosovo"}
# Income levels where the OCHA taxonomy has none. Kosovo: World Bank FY2021 "Upper middle
# income" (World Bank country and lending groups, July 2020).
# Venezuela: "Upper middle income" in the World Bank classification until FY2021 (July 2020), unclassified
# since July 2021 for lack of national accounts data; the last published level is used.
_INCOME_FILL = {"XKX": "Upper middle", "VEN": "Upper middle"}
_REGION_FILL = {"XKX": ("Europe", "Southern Europe")}  # UN M49 places Kosovo (under UNSCR 1244) with Serbia
INCOME_LEVELS = ("Low", "Lower middle", "Upper middle", "High")


@dataclass(frozen=True, slots=True)
class CountryInfo:
    iso3: str
    iso2: str | None
    name: str
    income_level: str | None
    region: str | None
    subregion: str | None


@functools.cache
def _hdx() -> dict[str, dict[str, str | None]]:
    from hdx.location.country import Country

    data = Country.countriesdata(use_live=False)
    return dict(data["countries"].items())


def validate_iso3(code: str, *, file: str | None = None, field: str | None = None) -> str:
    """Return the upper-case ISO3 code or raise an :class:`InputError` naming the bad value."""
    up = code.strip().upper() if isinstance(code, str) else code
    if isinstance(up, str) and (up in _USER_ASSIGNED or pycountry.countries.get(alpha_3=up) is not None):
        return up
    raise InputError("unknown ISO 3166-1 alpha-3 code", file=file, field=field, value=code)


@functools.cache
def country_info(iso3: str) -> CountryInfo:
    code = validate_iso3(iso3)
    rec = pycountry.countries.get(alpha_3=code)
    hdx = _hdx().get(code, {})
    name = (
        _USER_ASSIGNED.get(code)
        or getattr(rec, "common_name", None)
        or hdx.get("Preferred Term")
        or rec.name  # type: ignore[union-attr]
    )
    income = hdx.get("World Bank Income Level") or _INCOME_FILL.get(code)
    return CountryInfo(
        iso3=code,
        iso2=getattr(rec, "alpha_2", None) if rec else ("XK" if code == "XKX" else None),
        name=str(name),
        income_level=income,
        region=hdx.get("Region Name") or _REGION_FILL.get(code, (None, None))[0],
        subregion=hdx.get("Sub-region Name") or _REGION_FILL.get(code, (None, None))[1],
    )


def country_name(iso3: str) -> str:
    return country_info(iso3).name
