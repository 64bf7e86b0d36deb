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
from dosewise.policies.targeted import PRESETS as TARGETED_PRESETS
from dosewise.policies.targeted import allocate_priority_groups, preset
from dosewise.scenario import PolicyParams
from dosewise.world import World

Policy = Callable[[World, PolicyParams], Allocation]


OPTIMAL_FLOORS: dict[str, float | None] = {"optimal": None, "optimal-floor-50": 0.5, "optimal-floor-100": 1.0}
"""The ``optimal`` variants and the equity floor (share of the pro-rata entitlement) each sets."""


def optimal_params(name: str, params: PolicyParams) -> PolicyParams:
    """``params`` with the equity floor that the named ``optimal`` variant sets."""
    floor = OPTIMAL_FLOORS[name]
    if floor is None:
        return params
    return params.model_copy(update={"options": {**params.options, "equity_floor": floor}})


def _optimal(name: str) -> Policy:
    def policy(world: World, params: PolicyParams) -> Allocation:
        from dosewise.optimize.policy import allocate_optimal  # deferred: dosewise.optimize imports this package

        return allocate_optimal(world, optimal_params(name, params))

    return policy


POLICIES: dict[str, Policy] = {
    "covax-need-weighted": allocate_need_weighted,
    "covax-pro-rata": allocate_pro_rata,
    "fixed": allocate_fixed,
    "priority-groups": preset("priority-groups"),
    **{name: preset(name) for name in TARGETED_PRESETS},
    **{name: _optimal(name) for name in OPTIMAL_FLOORS},
}


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise InputError(f"unknown policy; known: {known}", field="policy", value=name) from None


__all__ = [
    "OPTIMAL_FLOORS",
    "POLICIES",
    "Policy",
    "allocate_fixed",
    "allocate_need_weighted",
    "allocate_priority_groups",
    "allocate_pro_rata",
    "get_policy",
    "optimal_params",
    "round_to_units",
    "water_fill_level",
]
