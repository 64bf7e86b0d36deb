"""Allocation policies: pure functions ``(world, params) -> Allocation``.

Each policy is registered by name in :data:`POLICIES` so scenarios, the CLI and sweeps can
name it.
"""

from __future__ import annotations

from collections.abc import Callable

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.policies.fixed import allocate_fixed
from dosewise.policies.need_weighted import allocate_need_weighted
from dosewise.policies.pro_rata import allocate_pro_rata, round_to_units, water_fill_level
from dosewise.scenario import PolicyParams
from dosewise.world import World

Policy = Callable[[World, PolicyParams], Allocation]


def _optimal(equity_floor: float | None = None) -> Policy:
    def policy(world: World, params: PolicyParams) -> Allocation:
        from dosewise.optimize.policy import allocate_optimal  # deferred: dosewise.optimize imports this package

        if equity_floor is not None:
            params = params.model_copy(update={"options": {**params.options, "equity_floor": equity_floor}})
        return allocate_optimal(world, params)

    return policy


POLICIES: dict[str, Policy] = {
    "covax-need-weighted": allocate_need_weighted,
    "covax-pro-rata": allocate_pro_rata,
    "fixed": allocate_fixed,
    "optimal": _optimal(),
    "optimal-floor-50": _optimal(0.5),
    "optimal-floor-100": _optimal(1.0),
}


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise InputError(f"unknown policy; known: {known}", field="policy", value=name) from None


__all__ = [
    "POLICIES",
    "Policy",
    "allocate_fixed",
    "allocate_need_weighted",
    "allocate_pro_rata",
    "get_policy",
    "round_to_units",
    "water_fill_level",
]
