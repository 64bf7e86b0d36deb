"""Targeted rules: groups served in priority order, pro rata to the population of an age group.

``priority-groups`` takes, lot by lot in order of availability (after the humanitarian buffer),
the named groups in ``policy.order`` one after the other; within a group every participant is
raised to the same coverage of its *target population* (water-filling, as in
``covax-pro-rata``) until the group reaches ``policy.ceiling`` or the lot runs out, then the
next group is served. Participants in none of the listed groups come last, pro rata.

Parameters (``policy:`` in a scenario):

==============  ==========  ==================================================================
option          default     meaning
==============  ==========  ==================================================================
``order``       required    group names (``HIC``, ``LIC``, ``AFRO``, ``AMC92`` …; see
                            :mod:`dosewise.reference.groups`) or lists of ISO3 codes
``age``         ``all``     target population: ``all`` or an age such as ``65+`` (people of
                            that age or older, UN WPP 2024 5-year bands)
``ceiling``     1.0         largest share of a participant's target population given a course
==============  ==========  ==================================================================

Registered presets: ``pro-rata-65+`` (everyone in one group, pro rata to people aged 65+),
``high-income-first`` (HIC, UMIC, LMIC, LIC) and ``low-income-first`` (LIC, LMIC, UMIC, HIC).
Buffer, coverage caps, acceptance, cold chain and shipping units apply as in ``covax-pro-rata``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.policies.pro_rata import round_to_units, water_fill_level
from dosewise.scenario import PolicyParams
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]

PRESETS: dict[str, dict[str, Any]] = {
    "pro-rata-65+": {"order": [], "age": "65+"},
    "high-income-first": {"order": ["HIC", "UMIC", "LMIC", "LIC"]},
    "low-income-first": {"order": ["LIC", "LMIC", "UMIC", "HIC"]},
}


def target_population(world: World, age: str) -> FloatArray:
    """People per participant in the target age group (``all`` or ``NN+``)."""
    if age in ("all", ""):
        return world.population
    text = str(age).strip()
    if not text.endswith("+") or not text[:-1].isdigit() or int(text[:-1]) % 5 or int(text[:-1]) > 100:
        raise InputError("must be 'all' or a multiple of 5 followed by + (e.g. 65+)", field="policy.age",
                         value=age)
    band = int(text[:-1]) // 5
    ages = world.pop_by_age
    complete = np.asarray(np.isfinite(ages).all(axis=1), dtype=np.bool_)
    bad = [str(c) for c, ok in zip(world.codes, complete.tolist(), strict=True) if not ok]
    if bad:
        raise InputError(f"no population by age for {', '.join(bad[:10])}; set `age_structure_like:` for them",
                         field="policy.age", value=age)
    return np.asarray(ages[:, band:].sum(axis=1), dtype=np.float64)


def group_masks(world: World, order: Sequence[Any]) -> list[npt.NDArray[np.bool_]]:
    """One mask per entry of ``order`` (a group name or a list of codes); earlier groups win;
    a last mask holds everyone left."""
    from dosewise.reference.groups import group_members

    codes = [str(c) for c in world.codes]
    parents = world.participants.get("parent", None)
    key = [str(parents.iloc[i]) if parents is not None and isinstance(parents.iloc[i], str) else c
           for i, c in enumerate(codes)]
    taken = np.zeros(len(codes), dtype=np.bool_)
    masks = []
    for i, g in enumerate(order):
        if isinstance(g, str):
            try:
                members = set(group_members(g))
            except InputError as exc:
                raise InputError(exc.message, field=f"policy.order[{i}]", value=g) from None
        elif isinstance(g, list | tuple):
            members = {str(c).upper() for c in g}
        else:
            raise InputError("a group name or a list of ISO3 codes", field=f"policy.order[{i}]", value=g)
        mask = np.array([k in members or c in members for c, k in zip(codes, key, strict=True)]) & ~taken
        taken |= mask
        masks.append(mask)
    masks.append(~taken)
    return masks


def allocate_priority_groups(world: World, params: PolicyParams, *, policy: str = "priority-groups") -> Allocation:
    """Groups in priority order, pro rata to each participant's target population within a group."""
    opts = {**PRESETS.get(policy, {}), **{k: v for k, v in params.options.items() if v is not None}}
    order = opts.get("order")
    if order is None or not isinstance(order, list | tuple):
        raise InputError("priority-groups needs policy.order: a list of groups", field="policy.order",
                         value=order)
    try:
        ceiling = float(opts.get("ceiling", 1.0))
    except (TypeError, ValueError):
        raise InputError("must be a number", field="policy.ceiling", value=opts.get("ceiling")) from None
    if not 0 < ceiling <= 1:
        raise InputError("must be in (0, 1]", field="policy.ceiling", value=ceiling)
    target = target_population(world, str(opts.get("age", "all")))
    masks = group_masks(world, order)
    parts = world.participants
    pop = parts["population"].to_numpy(dtype=np.float64)
    n = world.n
    safe_t = np.where(target > 0, target, 1.0)
    covered = np.minimum(parts["people_covered"].to_numpy(dtype=np.float64) / safe_t, 1.0)
    cap_share = parts["coverage_cap"].to_numpy(dtype=np.float64)
    cap = np.where(np.isnan(cap_share), 1.0, np.minimum(cap_share * pop / safe_t, 1.0))
    cap = np.where(target > 0, cap, 0.0)
    usable = world.usable()
    lots = world.lots
    order_lots = np.lexsort((lots.index.to_numpy(), lots["available"].to_numpy()))
    supply = lots["doses"].to_numpy(dtype=np.int64)
    doses = np.zeros((n, len(supply)), dtype=np.int64)
    buffer = np.zeros(len(supply), dtype=np.int64)
    remainder = np.zeros(len(supply), dtype=np.int64)
    for lot in order_lots:
        prod = world.products.loc[lots["product"].iloc[lot]]
        course = float(prod["doses_per_course"])
        unit = int(prod["shipping_unit"]) if params.round_to_shipping_unit else 1
        buffer[lot] = int(np.floor(params.buffer * supply[lot] + 0.5))
        left = int(supply[lot] - buffer[lot])
        for mask in masks:
            elig = mask & usable[:, lot] & (target > 0)
            if left < unit or not elig.any():
                continue
            _, raw = water_fill_level(target[elig], course, covered[elig], np.zeros(int(elig.sum())), cap[elig],
                                      float(left), ceiling)
            upper = np.maximum(np.minimum(cap[elig], ceiling) - covered[elig], 0.0) * target[elig] * course
            given = round_to_units(raw, unit, left, upper=upper + 1e-6)
            doses[elig, lot] += given
            covered[elig] += given / course / safe_t[elig]
            left -= int(given.sum())
        remainder[lot] = left
    return Allocation(
        policy=policy,
        participants=parts.index,
        lots=lots,
        doses=doses,
        buffer=buffer,
        remainder=remainder,
        params=params.model_dump(),
        notes={"coverage_of_target": covered, "target_population": target},
    )


def preset(name: str):  # type: ignore[no-untyped-def]
    """The registered policy function for a preset (or the generic ``priority-groups``)."""

    def policy(world: World, params: PolicyParams) -> Allocation:
        return allocate_priority_groups(world, params, policy=name)

    policy.__name__ = f"allocate_{name.replace('-', '_').replace('+', 'plus')}"
    return policy
