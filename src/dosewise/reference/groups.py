"""Named participant groups.

``AMC92``: the 92 economies eligible for the COVAX Advance Market Commitment, as set by the
Gavi Board in July 2020 (31 low-income, 49 lower-middle-income by World Bank FY2021, and 12
other IDA-eligible economies). Sources: Gavi Board decision, July 2020, as reproduced in the
list of recipients of the US donation of 500 million Pfizer doses (June 2021), and the same
list in public MRC-GIDA analysis code (``get_covax_iso3c()``); both agree exactly.
"""

from __future__ import annotations

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


def known_groups() -> list[str]:
    return sorted(GROUPS)


def group_members(name: str) -> list[str]:
    """ISO3 codes of a named group (case-insensitive), sorted."""
    key = name.upper()
    if key not in GROUPS:
        raise InputError(f"unknown participant group; known groups: {', '.join(known_groups())}", value=name)
    return list(GROUPS[key])
