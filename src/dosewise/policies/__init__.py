"""Allocation policies: pure functions ``(world, params) -> Allocation``.

The table that names them (:data:`dosewise.registry.POLICIES`) lives in :mod:`dosewise.registry`.
"""

from __future__ import annotations

from dosewise.policies.fixed import allocate_fixed
from dosewise.policies.need_weighted import allocate_need_weighted
from dosewise.policies.pro_rata import allocate_pro_rata, round_to_units, water_fill_level
from dosewise.policies.targeted import allocate_priority_groups

__all__ = [
    "allocate_fixed",
    "allocate_need_weighted",
    "allocate_priority_groups",
    "allocate_pro_rata",
    "round_to_units",
    "water_fill_level",
]
