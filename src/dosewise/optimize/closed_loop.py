"""Closed-loop check: run the optimiser's allocation through the impact model and compare the
LP's estimate of deaths averted with the simulated one.

The LP is linear in doses (each tier's marginal value is measured once, for a small dose), so it
ignores the indirect effect of vaccination on transmission and the saturation within a tier; the
gap says how far to trust its ranking of allocations.
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
    """LP estimate (``notes['objective_rounded']``) beside the impact model's deaths averted."""
    from dosewise.impact import run_impact

    result = run_impact(world, allocation, impact_params, setup=setup, baseline=baseline, like=like)
    simulated = float(result.summary()["deaths_averted"])
    estimate = float(allocation.notes.get("objective_rounded", float("nan")))
    return {
        "lp_deaths_averted": estimate,
        "simulated_deaths_averted": simulated,
        "gap": estimate - simulated,
        "gap_share": (estimate - simulated) / simulated if simulated else float("nan"),
    }
