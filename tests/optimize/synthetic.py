"""Synthetic but plausible tier values for tests and the benchmark, built from the world's own
WPP age structure: until the impact model's ``tier_values`` is used, deaths averted per dose in
a tier = IFR of the tier (O'Driscoll et al. 2021) × an
assumed attack rate × efficacy against death ÷ doses per course. The attack rate and efficacy
are round illustrative numbers, not estimates."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dosewise.world import World

FloatArray = npt.NDArray[np.float64]

TIER_BANDS: tuple[tuple[int, int], ...] = ((16, 21), (13, 16), (10, 13), (0, 10))
"""WPP band ranges of the four tiers, oldest first: 80+, 65-79, 50-64, 0-49."""
ATTACK_RATE = 0.3  # illustrative
EFFICACY = 0.9  # illustrative
COURSE = 2.0


# O'Driscoll M et al. Nature 590:140 (2021), doi:10.1038/s41586-020-2918-0, Table S3, IFR (%) both sexes,
# bands 0-4 … 75-79, 80+ (80+ repeated over the five WPP bands 80-84 … 100+).
ODRISCOLL2021_IFR_PCT = (
    0.003, 0.001, 0.001, 0.003, 0.006, 0.013, 0.024, 0.040, 0.075, 0.121,
    0.207, 0.323, 0.456, 1.075, 1.674, 3.203, 8.292,
)


def ifr21() -> FloatArray:
    pct = np.array(ODRISCOLL2021_IFR_PCT[:16] + (ODRISCOLL2021_IFR_PCT[16],) * 5)
    return np.asarray(pct / 100.0, dtype=np.float64)


def tier_values_from_ages(pop_by_age: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(sizes, deaths averted per dose), each (n, 4), from (n, 21) WPP bands."""
    ifr = ifr21()
    sizes = np.stack([pop_by_age[:, a:b].sum(axis=1) for a, b in TIER_BANDS], axis=1)
    deaths = np.stack([(pop_by_age[:, a:b] * ifr[a:b]).sum(axis=1) for a, b in TIER_BANDS], axis=1)
    tier_ifr = np.divide(deaths, sizes, out=np.zeros_like(deaths), where=sizes > 0)
    return sizes, tier_ifr * ATTACK_RATE * EFFICACY / COURSE


def synthetic_tier_values(world: World) -> tuple[FloatArray, FloatArray]:
    return tier_values_from_ages(world.pop_by_age)
