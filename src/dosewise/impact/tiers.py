"""Marginal value of a dose by priority tier, from the engine, for the optimiser.

Tiers are groups of age bands served oldest first. The default four are 75+, 65-74, 50-64 and
0-49 (the WHO SAGE Roadmap's older-adult stages, cut at the model's 5-year bands). For each tier
the engine runs once for all participants, with a small number of courses (``fraction`` of the
tier's people, default 1%) given to that tier alone on ``day``; the value of a dose is the deaths
averted against the no-vaccine run divided by the doses. Small doses make this a finite-
difference derivative at zero coverage: the optimiser's piecewise-linear objective takes it as
the slope of each tier's segment, whose length is the tier's size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.errors import InputError
from dosewise.impact.engine import Setup, Trajectory, prepare, product_vaccines, simulate
from dosewise.impact.parameters import BANDS, ImpactParams
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]

TIER_PRESETS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: (tuple(range(16)),),
    2: ((13, 14, 15), tuple(range(13))),
    3: ((15,), (13, 14), tuple(range(13))),
    4: ((15,), (13, 14), (10, 11, 12), tuple(range(10))),
    5: ((15,), (13, 14), (10, 11, 12), (4, 5, 6, 7, 8, 9), (0, 1, 2, 3)),
    16: tuple((b,) for b in range(15, -1, -1)),
}
"""Tier presets by count, as groups of model band indices (15 = 75+ … 0 = 0-4), oldest first."""


def _tier_name(bands: Sequence[int]) -> str:
    lo, hi = BANDS[min(bands)], BANDS[max(bands)]
    return lo if lo == hi else f"{lo.split('-')[0]}-{hi.split('-')[-1].rstrip('+')}" + ("+" if max(bands) == 15 else "")


@dataclass(frozen=True)
class TierValues:
    """``sizes[p, t]`` people and ``deaths_averted_per_dose[p, t]`` for participant ``p``, tier ``t``."""

    codes: tuple[str, ...]
    tiers: tuple[str, ...]
    bands: tuple[tuple[int, ...], ...]
    sizes: FloatArray
    doses: FloatArray
    deaths_averted_per_dose: FloatArray
    product: str
    doses_per_course: float
    day: int

    def frame(self) -> pd.DataFrame:
        idx = pd.MultiIndex.from_product([self.codes, self.tiers], names=["participant", "tier"])
        return pd.DataFrame(
            {
                "people": self.sizes.ravel(),
                "doses_tested": self.doses.ravel(),
                "deaths_averted_per_dose": self.deaths_averted_per_dose.ravel(),
            },
            index=idx,
        )


def default_product(world: World) -> str:
    """The product with the most doses among the world's lots."""
    if world.lots.empty:
        raise InputError("the world has no lots; name the product for tier values", field="product")
    return str(world.lots.groupby("product")["doses"].sum().idxmax())


def tier_values(
    world: World,
    params: ImpactParams | None = None,
    *,
    tiers: int | Sequence[Sequence[int]] = 4,
    fraction: float = 0.01,
    doses_per_tier: FloatArray | None = None,
    product: str | None = None,
    day: int = 0,
    setup: Setup | None = None,
    baseline: Trajectory | None = None,
) -> TierValues:
    """Deaths averted per dose given to each priority tier of each participant (one engine run per tier).

    ``doses_per_tier`` (n, tiers) overrides ``fraction`` (share of the tier's people given a
    course). ``product`` defaults to the product with most doses in the world's lots; its
    efficacy comes from the catalogue (or ``params.efficacy``).
    """
    params = params or ImpactParams()
    groups = TIER_PRESETS.get(tiers) if isinstance(tiers, int) else tuple(tuple(g) for g in tiers)
    if groups is None:
        raise InputError(f"no tier preset for {tiers}; presets: {sorted(TIER_PRESETS)}", field="tiers", value=tiers)
    flat = [b for g in groups for b in g]
    if len(set(flat)) != len(flat) or any(not 0 <= b < 16 for b in flat):
        raise InputError("tiers must be disjoint groups of band indices 0..15", field="tiers", value=groups)
    if not 0 <= day < params.days:
        raise InputError("day must fall within the horizon", field="day", value=day)
    setup = setup or prepare(world, params)
    baseline = baseline or simulate(setup)
    pid = product or default_product(world)
    n, nt = setup.n, len(groups)
    sizes = np.stack([setup.pop[:, list(g)].sum(axis=1) for g in groups], axis=1)
    unit = product_vaccines(world, [pid], np.zeros((n, 1, params.days)), params)
    course = float(unit.doses_per_course[0])
    if doses_per_tier is None:
        doses = fraction * sizes * course
    else:
        doses = np.asarray(doses_per_tier, dtype=np.float64)
        if doses.shape != (n, nt) or (doses < 0).any():
            raise InputError(f"doses_per_tier must be non-negative with shape {(n, nt)}", field="doses_per_tier")
    value = np.zeros((n, nt))
    for t, g in enumerate(groups):
        run_setup = dataclasses.replace(setup, params=setup.params.model_copy(update={"priority": (tuple(g),)}))
        arr = np.zeros((n, 1, params.days))
        arr[:, 0, day] = doses[:, t]
        traj = simulate(run_setup, dataclasses.replace(unit, doses=arr))
        averted = (baseline.deaths[-1] - traj.deaths[-1]).sum(axis=1)
        used = traj.doses_used[:, 0]
        value[:, t] = np.divide(averted, used, out=np.zeros(n), where=used > 0)
    return TierValues(
        codes=setup.codes,
        tiers=tuple(_tier_name(g) for g in groups),
        bands=groups,
        sizes=sizes,
        doses=doses,
        deaths_averted_per_dose=value,
        product=pid,
        doses_per_course=course,
        day=day,
    )
