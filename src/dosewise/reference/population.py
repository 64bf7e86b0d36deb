"""Population by 5-year age band from UN WPP 2024, as shipped by ``starsim-data``.

Source: United Nations, DESA, Population Division (2024). *World Population Prospects 2024*,
Medium variant (CC BY 3.0 IGO), in the HDF5 file ``starsim_data/data/demographics-2024.h5``
(decadal years 1950–2100, 21 bands 0-4 … 95-99, 100+, female and male). The file is located
without importing ``starsim_data`` (its ``__init__`` pulls in sciris and matplotlib) and read
directly with h5py once; the table (both sexes summed) is then kept in the user cache, keyed by
the package version and the file's size and time, so later processes load it in milliseconds.
Years between two decades are interpolated linearly band by band (documented choice: WPP
ships no annual series in that package).
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dosewise.errors import ReferenceDataError
from dosewise.reference._cache import cached_arrays, package_dir, version

AGE_BANDS: tuple[str, ...] = (*tuple(f"{a}-{a + 4}" for a in range(0, 100, 5)), "100+")
"""The 21 WPP bands, 0-4 … 95-99, 100+."""

_SOURCE = "UN World Population Prospects 2024, Medium variant (starsim-data demographics-2024.h5)"


def _data_dir() -> Path:
    return package_dir("starsim_data") / "data"


@functools.cache
def _location_keys() -> dict[str, str]:
    """ISO3 → the location key used in the HDF5 groups."""
    with open(_data_dir() / "locations.csv", newline="", encoding="utf-8") as fh:
        return {row["iso3"]: row["location"] for row in csv.DictReader(fh) if row["iso3"]}


def _read_h5() -> dict[str, npt.NDArray[np.float64]]:
    """Read every location from the HDF5 file: ``years`` (Y,), ``codes`` (N,), ``table`` (N, Y, 21)."""
    import h5py

    keys = _location_keys()
    codes: list[str] = []
    rows: list[npt.NDArray[np.float64]] = []
    with h5py.File(_data_dir() / "demographics-2024.h5", "r") as fh:
        group = fh["population"]
        spec = json.loads(group.attrs["spec"])
        years = np.array([int(y) for y in spec["years"]], dtype=np.int64)
        if len(spec["ages"]) != len(AGE_BANDS):
            raise ReferenceDataError(f"unexpected age bands in {_SOURCE}: {spec['ages']}")
        for iso3, key in keys.items():
            if key in group:
                codes.append(iso3)
                rows.append(np.asarray(group[key][()], dtype=np.float64).sum(axis=1))
    table = np.stack(rows) if rows else np.zeros((0, len(years), len(AGE_BANDS)))
    return {"years": years, "codes": np.array(codes, dtype=np.str_), "table": table}  # type: ignore[dict-item]


@functools.cache
def _table() -> tuple[tuple[int, ...], dict[str, npt.NDArray[np.float64]]]:
    """All locations at once: years and ISO3 → array (years, 21) of both sexes."""
    h5 = _data_dir() / "demographics-2024.h5"
    try:
        stat = h5.stat()
    except OSError as exc:
        raise ReferenceDataError(f"cannot read {_SOURCE}: {exc}") from None
    key = f"starsim-data {version('starsim-data')} {stat.st_size} {stat.st_mtime_ns}"
    data = cached_arrays("wpp2024-population", key, _read_h5)
    table = np.asarray(data["table"], dtype=np.float64)
    years = tuple(int(y) for y in data["years"])
    return years, {str(c): table[i] for i, c in enumerate(data["codes"].tolist())}


def wpp_coverage() -> frozenset[str]:
    """The ISO3 codes for which the package ships WPP 2024 population."""
    return frozenset(_table()[1])


def population_by_age(iso3: Sequence[str], year: int = 2020) -> npt.NDArray[np.float64]:
    """Population by the 21 WPP age bands, persons, shape ``(len(iso3), 21)``.

    Raises :class:`ReferenceDataError` naming every code that WPP 2024 (as shipped) does not
    cover, so the caller can supply a population for it instead of receiving a silent zero.
    """
    years, table = _table()
    missing = [c for c in iso3 if c not in table]
    if missing:
        raise ReferenceDataError(
            f"no UN WPP 2024 population in starsim-data for {', '.join(missing)}; "
            "supply `population:` (and optionally `age_structure_like:`) for them in the scenario"
        )
    if not years[0] <= year <= years[-1]:
        raise ReferenceDataError(f"year {year} outside the WPP 2024 range {years[0]}–{years[-1]}")
    hi = int(np.searchsorted(years, year))
    if years[hi] == year:
        lo, w = hi, 0.0
    else:
        lo = hi - 1
        w = (year - years[lo]) / (years[hi] - years[lo])
    stacked = np.stack([table[c] for c in iso3]) if iso3 else np.zeros((0, len(years), len(AGE_BANDS)))
    return np.asarray((1.0 - w) * stacked[:, lo, :] + w * stacked[:, hi, :], dtype=np.float64)


POPULATION_SOURCE = _SOURCE
