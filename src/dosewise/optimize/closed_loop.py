"""Closed-loop check: run the optimiser's allocation through the impact model and compare the
LP's estimate of deaths averted with the simulated one.

With the impact model's values (the default), the LP's estimate is the simulated value of the
allocation it stepped from plus the change its local values per participant × lot predict,
re-linearised until the simulated gain stops, so the gap is small; with tier values measured
once at 1 % coverage (``options.values: tiers``) it ignores saturation, timing and indirect
effects, and the gap says how far to trust its ranking of allocations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dosewise.allocation import Allocation
from dosewise.world import World


def closed_loop(
    world: World,
    allocation: Allocation,
    impact_params: Any = None,
    *,
    setup: Any = None,
    baseline: Any = None,
    like: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """LP estimate (``notes['objective_rounded']``) beside the impact model's deaths averted.

    ``impact_params`` default to the world's epidemic settings (what ``optimal`` optimised)."""
    from dosewise.impact import run_impact
    from dosewise.impact.settings import impact_setting

    start = None
    if impact_params is None:
        impact_params, start = impact_setting(world)
    result = run_impact(world, allocation, impact_params, start=start, setup=setup, baseline=baseline, like=like)
    simulated = float(result.summary()["deaths_averted"])
    estimate = float(allocation.notes.get("objective_rounded", float("nan")))
    return {
        "lp_deaths_averted": estimate,
        "simulated_deaths_averted": simulated,
        "gap": estimate - simulated,
        "gap_share": (estimate - simulated) / simulated if simulated else float("nan"),
    }
