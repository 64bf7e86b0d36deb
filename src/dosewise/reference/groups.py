"""Named participant groups.

``ALL``: every economy with UN WPP 2024 population in starsim-data (187). ``HIC``, ``UMIC``,
``LMIC``, ``LIC``: those economies by World Bank income level as shipped in hdx-python-country
4.2.5 (OCHA Countries & Territories Taxonomy), which matches the World Bank's FY2024
classification of 1 July 2023 (for example Indonesia upper-middle, Algeria, Iran and Ukraine
lower-middle, Russia and Bulgaria upper-middle); Venezuela, unclassified there and by the World
Bank since FY2022, takes its last published level (upper-middle). ``AFRO``, ``AMRO``, ``EMRO``,
``EURO``, ``SEARO``, ``WPRO``: WHO regions (the ``WHO_region`` column of WHO's weekly COVID-19 file, shipped as
``dosewise/data/who_regions.csv``), also limited to economies with population. ``SFP``:
self-financing participants, here every economy in ``ALL`` that is not AMC-eligible (COVAX's
self-financing participants were the non-AMC economies that joined the Facility; which of them
joined is not shipped, so the group is the eligible set).

``AMC92``: the 92 economies eligible for the COVAX Advance Market Commitment, as set by the
Gavi Board in July 2020 (31 low-income, 49 lower-middle-income by World Bank FY2021, and 12
other IDA-eligible economies). Sources: Gavi Board decision, July 2020, as reproduced in the
list of recipients of the US donation of 500 million Pfizer doses (June 2021), and the same
list in public MRC-GIDA analysis code (``get_covax_iso3c()``); both agree exactly.
"""

from __future__ import annotations

import functools

from dosewise.errors import InputError

_AMC92_LOW = [
    "AFG", "BDI", "BEN", "BFA", "CAF", "COD", "ERI", "ETH", "GIN", "GMB", "GNB", "HTI", "LBR", "MDG",
    "MLI", "MOZ", "MWI", "NER", "NPL", "PRK", "RWA", "SLE", "SOM", "SSD", "SYR", "TCD", "TGO", "TJK",
    "TZA", "UGA", "YEM",
]
_AMC92_LOWER_MIDDLE = [
    "AGO", "BGD", "BOL", "BTN", "CIV", "CMR", "COG", "COM", "CPV", "DJI", "DZA", "EGY", "FSM", "GHA",
    "HND", "IDN", "IND", "KEN", "KGZ", "KHM", "KIR", "LAO", "LKA", "LSO", "MAR", "MDA", "MMR", "MNG",
    "MRT", "NGA", "NIC", "PAK", "PHL", "PNG", "PSE", "SDN", "SEN", "SLB", "SLV", "STP", "SWZ", "TLS",
    "TUN", "UKR", "UZB", "VNM", "VUT", "ZMB", "ZWE",
]
_AMC92_OTHER_IDA = [
    "DMA", "FJI", "GRD", "GUY", "LCA", "MDV", "MHL", "TON", "TUV", "VCT", "WSM", "XKX",
]

GROUPS: dict[str, tuple[str, ...]] = {
    "AMC92": tuple(sorted(_AMC92_LOW + _AMC92_LOWER_MIDDLE + _AMC92_OTHER_IDA)),
}
GROUP_SOURCES: dict[str, str] = {
    "AMC92": "Gavi Board, July 2020: COVAX AMC-eligible economies (World Bank FY2021 income groups + IDA)",
}


INCOME_GROUPS: dict[str, str] = {"HIC": "High", "UMIC": "Upper middle", "LMIC": "Lower middle", "LIC": "Low"}
"""Group name → World Bank income level (as the hdx taxonomy spells it)."""
WHO_REGIONS = ("AFRO", "AMRO", "EMRO", "EURO", "SEARO", "WPRO")
GROUP_SOURCES.update(
    {
        "ALL": "every economy with UN WPP 2024 population (starsim-data)",
        **{k: f"World Bank income level '{v}' (hdx-python-country 4.2.5; World Bank FY2024, 1 July 2023)"
           for k, v in INCOME_GROUPS.items()},
        **{r: f"WHO region {r} (WHO weekly COVID-19 file)" for r in WHO_REGIONS},
        "SFP": "ALL minus AMC92: economies that could join COVAX as self-financing participants",
    }
)


@functools.cache
def who_regions() -> dict[str, str]:
    """ISO3 → WHO region, from ``dosewise/data/who_regions.csv``."""
    import csv
    from importlib import resources

    text = (resources.files("dosewise") / "data" / "who_regions.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["iso3"]: r["who_region"] for r in rows}


@functools.cache
def _dynamic(key: str) -> tuple[str, ...]:
    from dosewise.reference.countries import country_info
    from dosewise.reference.population import wpp_coverage

    everyone = sorted(c for c in wpp_coverage() if len(c) == 3)
    if key == "ALL":
        return tuple(everyone)
    if key in INCOME_GROUPS:
        return tuple(c for c in everyone if country_info(c).income_level == INCOME_GROUPS[key])
    if key in WHO_REGIONS:
        reg = who_regions()
        return tuple(c for c in everyone if reg.get(c) == key)
    if key == "SFP":
        amc = set(GROUPS["AMC92"])
        return tuple(c for c in everyone if c not in amc)
    raise KeyError(key)


def known_groups() -> list[str]:
    return sorted(GROUP_SOURCES)


def group_members(name: str) -> list[str]:
    """ISO3 codes of a named group (case-insensitive), sorted."""
    key = name.upper()
    if key in GROUPS:
        return list(GROUPS[key])
    if key not in GROUP_SOURCES:
        raise InputError(f"unknown participant group; known groups: {', '.join(known_groups())}", value=name)
    return list(_dynamic(key))
