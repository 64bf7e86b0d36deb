"""Age-mixing contact matrices: Prem et al. 2021, with Prem et al. 2017 for ten locations.

Source: ``starsim_data/data/prem2021.h5`` (177 locations; Prem K, van Zandvoort K, Klepac P
et al., *PLoS Comput Biol* 17(7): e1009098, 2021) and ``starsim_data/data/prem/prem2017.h5``
(Andorra, Antigua and Barbuda, Australia, Haiti, Japan, Kiribati, Lebanon, Monaco,
Seychelles, Taiwan; Prem K, Cook AR, Jit M, *PLoS Comput Biol* 13(9): e1005697, 2017), both
GPL-3.0 as redistributed by starsim-data. Read with h5py, the package located without importing
it (its ``__init__`` pulls in sciris and matplotlib). 16 age bands 0-4 … 70-74, 75+; settings
``all`` (= home + school + work + community), ``home``, ``school``, ``work``, ``community``.

**Orientation.** ``M[i, j]`` is the mean number of daily contacts a person in age band ``i``
has with people in band ``j`` (Prem's convention: rows are the respondent). Checked on the
data: ``N_i M[i, j]`` (total contacts between the two bands) is far closer to symmetric with
this reading than with the transposed one (relative asymmetry 0.17 vs 0.57 for India, 0.24 vs
0.86 for Nigeria with WPP 2024 populations).

**Proxies** for a participant with no matrix of its own (sub-national units, and DMA, FSM,
GRD, MHL, SOM, TUV, XKX): the matrix of its ``like`` country when one is given (the
scenario's ``age_structure_like`` or a unit's ``parent``), else the element-wise mean matrix
of all countries with a matrix at the same World Bank income level. The source of every
participant's matrix is returned alongside so outputs can flag proxies.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dosewise.errors import ReferenceDataError
from dosewise.reference._cache import package_dir

CONTACT_BANDS: tuple[str, ...] = (*tuple(f"{a}-{a + 4}" for a in range(0, 75, 5)), "75+")
SETTINGS: tuple[str, ...] = ("all", "home", "school", "work", "community")
PREM2021 = "Prem et al. 2021, PLoS Comput Biol 17(7):e1009098 (starsim-data prem2021.h5, GPL-3.0)"
PREM2017 = "Prem et al. 2017, PLoS Comput Biol 13(9):e1005697 (starsim-data prem/prem2017.h5, GPL-3.0)"


def _data_dir() -> Path:
    return package_dir("starsim_data") / "data"  # found without running starsim_data's __init__


@functools.cache
def _all_matrices(setting: str) -> dict[str, tuple[npt.NDArray[np.float64], str]]:
    """ISO3 → (16×16 matrix, source tag) for every location with a matrix."""
    import h5py

    if setting not in SETTINGS:
        raise ReferenceDataError(f"unknown contact setting {setting!r}; known: {', '.join(SETTINGS)}")
    d = _data_dir()
    with open(d / "locations.csv", newline="", encoding="utf-8") as fh:
        keys = {row["location"]: row["iso3"] for row in csv.DictReader(fh) if row["iso3"]}
    out: dict[str, tuple[npt.NDArray[np.float64], str]] = {}
    for fname, tag in (("prem/prem2017.h5", "prem2017"), ("prem2021.h5", "prem2021")):  # 2021 wins
        with h5py.File(d / fname, "r") as fh:
            for loc, iso3 in keys.items():
                if loc in fh:
                    mat = np.asarray(fh[loc][setting][()], dtype=np.float64)
                    if mat.shape != (16, 16):
                        raise ReferenceDataError(f"{fname}: {loc}/{setting} has shape {mat.shape}, not 16×16")
                    out[iso3] = (mat, tag)
    return out


def matrix_coverage(setting: str = "all") -> frozenset[str]:
    """ISO3 codes with a Prem 2021 or Prem 2017 matrix."""
    return frozenset(_all_matrices(setting))


@functools.cache
def _income_means(setting: str) -> dict[str, npt.NDArray[np.float64]]:
    from dosewise.reference.countries import country_info

    groups: dict[str, list[npt.NDArray[np.float64]]] = {}
    for iso3, (mat, _) in _all_matrices(setting).items():
        level = country_info(iso3).income_level
        if level:
            groups.setdefault(level, []).append(mat)
    return {k: np.mean(np.stack(v), axis=0) for k, v in groups.items()}


@dataclass(frozen=True)
class ContactMatrices:
    """``matrices[p, i, j]``: daily contacts of a person of band ``i`` with band ``j`` in participant ``p``.

    ``source[p]`` is ``prem2021``, ``prem2017``, ``proxy:<ISO3>`` (the matrix of a like
    country) or ``income-mean:<level>`` (mean of the income level); ``is_proxy[p]`` flags the
    last two.
    """

    matrices: npt.NDArray[np.float64]
    source: tuple[str, ...]

    @property
    def is_proxy(self) -> npt.NDArray[np.bool_]:
        return np.array([s.startswith(("proxy:", "income-mean:")) for s in self.source], dtype=np.bool_)


def contact_matrices(
    codes: Sequence[str],
    *,
    like: Mapping[str, str | None] | None = None,
    income_levels: Sequence[str | None] | None = None,
    setting: str = "all",
) -> ContactMatrices:
    """Contact matrices for participants ``codes`` (same order), with the documented proxies.

    ``like`` maps a participant code to the country whose matrix stands in for it;
    ``income_levels`` gives each participant's World Bank income level for the income-mean
    fallback. A participant with neither raises :class:`ReferenceDataError` naming it.
    """
    table = _all_matrices(setting)
    like = like or {}
    mats = np.empty((len(codes), 16, 16))
    source: list[str] = []
    missing: list[str] = []
    for p, code in enumerate(codes):
        if code in table:
            mats[p], tag = table[code]
            source.append(tag)
            continue
        stand_in = like.get(code)
        if stand_in is not None and stand_in.upper() in table:
            mats[p] = table[stand_in.upper()][0]
            source.append(f"proxy:{stand_in.upper()}")
            continue
        level = income_levels[p] if income_levels is not None else None
        means = _income_means(setting)
        if level is not None and level in means:
            mats[p] = means[level]
            source.append(f"income-mean:{level}")
            continue
        missing.append(code)
    if missing:
        raise ReferenceDataError(
            f"no contact matrix for {', '.join(missing)}: neither Prem 2021/2017 nor a like country "
            "(age_structure_like / parent) nor a World Bank income level to take a mean matrix from"
        )
    return ContactMatrices(matrices=mats, source=tuple(source))


__all__ = ["CONTACT_BANDS", "PREM2017", "PREM2021", "SETTINGS", "ContactMatrices", "contact_matrices",
           "matrix_coverage"]
