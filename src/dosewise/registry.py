"""The name → policy table: scenarios, the CLI, the service and sweeps name a policy by its key.

Every policy is a pure function ``(world, params) -> Allocation``. The ``optimal`` variants
live in :mod:`dosewise.optimize`, which sits above :mod:`dosewise.policies` in the layering,
so the table lives here, above both.
"""

from __future__ import annotations

from collections.abc import Callable

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.policies.fixed import allocate_fixed
from dosewise.policies.need_weighted import allocate_need_weighted
from dosewise.policies.pro_rata import allocate_pro_rata
from dosewise.policies.targeted import PRESETS as TARGETED_PRESETS
from dosewise.policies.targeted import preset
from dosewise.scenario import PolicyParams, policy_params
from dosewise.world import World

__all__ = ["OPTIMAL_FLOORS", "POLICIES", "Policy", "get_policy", "optimal_params"]

Policy = Callable[[World, PolicyParams], Allocation]
"""A policy: the world and its parameters in, an allocation matrix out; no side effects."""

OPTIMAL_FLOORS: dict[str, float | None] = {"optimal": None, "optimal-floor-50": 0.5, "optimal-floor-100": 1.0}
"""The ``optimal`` variants and the equity floor (share of the pro-rata entitlement) each sets."""


def optimal_params(name: str, params: PolicyParams) -> PolicyParams:
    """``params`` with the equity floor that the named ``optimal`` variant sets."""
    floor = OPTIMAL_FLOORS[name]
    return policy_params(params, name=name, **({} if floor is None else {"equity_floor": floor}))


def _optimal(name: str) -> Policy:
    def policy(world: World, params: PolicyParams) -> Allocation:
        from dosewise.optimize.policy import allocate_optimal  # HiGHS and the LP only when asked for

        return allocate_optimal(world, optimal_params(name, params))

    policy.__name__ = f"allocate_{name.replace('-', '_')}"
    return policy


POLICIES: dict[str, Policy] = {
    "covax-need-weighted": allocate_need_weighted,
    "covax-pro-rata": allocate_pro_rata,
    "fixed": allocate_fixed,
    "priority-groups": preset("priority-groups"),
    **{name: preset(name) for name in TARGETED_PRESETS},
    **{name: _optimal(name) for name in OPTIMAL_FLOORS},
}
"""Every policy a scenario may name."""


def get_policy(name: str) -> Policy:
    """The policy called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`POLICIES` (e.g. ``covax-pro-rata``, ``optimal``).

    Returns
    -------
    Policy
        A pure function ``(world, params) -> Allocation``.

    Raises
    ------
    InputError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> from dosewise import build_world, get_policy, load_demo
    >>> sc = load_demo()
    >>> allocation = get_policy("covax-pro-rata")(build_world(sc), sc.policy)
    >>> allocation.policy, allocation.doses.shape
    ('covax-pro-rata', (92, 2))
    """
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(sorted(POLICIES))
        raise InputError(f"unknown policy; known: {known}", field="policy", value=name) from None
