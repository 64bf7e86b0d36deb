"""COVAX phase 1: pro rata to population, by product, in tranches, with caps, floors, buffer
and shipping units.

The rule (WHO, *Fair allocation mechanism for COVID-19 vaccines through the COVAX Facility*,
Sept 2020; COVAX allocation explainer, Nov 2020; first-round allocation, Mar 2021):

1. A humanitarian buffer (default 5%) of every lot is held back and reported.
2. Each lot goes, pro rata to population, to the participants that accept the product, are
   approved for it and can store it. "Pro rata" is water-filling: every eligible participant is
   raised to the same coverage level ``c`` (share of its population given a full course), so
   doses per 100 people are equal among participants with no floor or cap.
3. Tranches: the level rises through the tranche targets (3% of population first, then up to
   20%); no participant goes past the last tranche, and what is left stays unallocated.
4. Caps: a participant may ask for less (``coverage_cap``; India's deal covered 7–9%).
5. Small-state floors: participants at or below a population threshold get at least a set
   number of doses per 100 people (published shares: 14–20 per 100 for Bhutan, Maldives).
6. Amounts are rounded to the product's shipping unit (AstraZeneca: multiples of 2,400 doses)
   by largest remainder, never handing out more than the lot holds after the buffer; the
   rounding remainder is reported.

Lots are taken in order of availability; coverage given by an earlier lot counts toward the
tranches of a later one. The whole computation is vectorised over participants.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from dosewise.allocation import Allocation
from dosewise.scenario import PolicyParams
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _doses_at(
    level: float,
    pop: FloatArray,
    course: float,
    covered: FloatArray,
    floor: FloatArray,
    cap: FloatArray,
    scale: FloatArray | None = None,
) -> FloatArray:
    target = np.minimum(np.maximum(level if scale is None else level * scale, floor), cap)
    return np.asarray(np.maximum(target - covered, 0.0) * pop * course, dtype=np.float64)


def water_fill_level(
    pop: FloatArray,
    course: float,
    covered: FloatArray,
    floor: FloatArray,
    cap: FloatArray,
    supply: float,
    ceiling: float,
    *,
    scale: FloatArray | None = None,
    iterations: int = 64,
) -> tuple[float, FloatArray]:
    """The common level ``c`` whose doses use up ``supply``, and those doses.

    ``covered``, ``floor`` and ``cap`` are shares of population; participant i's target
    coverage is ``min(max(c * scale_i, floor_i), cap_i, ceiling)`` (``scale`` = 1 for plain pro
    rata; a need weight in (0, 1] for need-weighted shares) and its doses are
    ``max(0, target - covered_i) * pop_i * course``, nondecreasing in c, so bisection finds the
    level. If even the floors at ``c = 0`` exceed supply, the floors are scaled down pro rata.
    """
    cap = np.minimum(cap, ceiling)
    floor = np.minimum(floor, cap)
    top_level = ceiling
    if scale is not None:
        positive = scale[scale > 0]
        top_level = ceiling / float(positive.min()) if positive.size else 0.0
    top = _doses_at(top_level, pop, course, covered, floor, cap, scale)
    if top.sum() <= supply:
        return top_level, top
    bottom = _doses_at(0.0, pop, course, covered, floor, cap, scale)
    base = bottom.sum()
    if base >= supply:
        return 0.0, bottom * (supply / base) if base > 0 else bottom
    lo, hi = 0.0, top_level
    buf = np.empty_like(pop)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:  # lo and hi are adjacent floats: later passes change nothing
            break
        if _doses_sum(mid, pop, course, covered, floor, cap, scale, buf) > supply:
            hi = mid
        else:
            lo = mid
    return lo, _doses_at(lo, pop, course, covered, floor, cap, scale)


def _doses_sum(
    level: float,
    pop: FloatArray,
    course: float,
    covered: FloatArray,
    floor: FloatArray,
    cap: FloatArray,
    scale: FloatArray | None,
    buf: FloatArray,
) -> float:
    """``_doses_at(...).sum()`` computed in ``buf`` with the same operations in the same order
    (so the same floats), without allocating six temporary arrays per bisection pass."""
    if scale is None:
        np.maximum(floor, level, out=buf)
    else:
        np.multiply(scale, level, out=buf)
        np.maximum(buf, floor, out=buf)
    np.minimum(buf, cap, out=buf)
    np.subtract(buf, covered, out=buf)
    np.maximum(buf, 0.0, out=buf)
    np.multiply(buf, pop, out=buf)
    np.multiply(buf, course, out=buf)
    return float(buf.sum())


def round_to_units(
    amounts: FloatArray, unit: int, budget: int, *, upper: FloatArray | None = None, priority: BoolArray | None = None
) -> IntArray:
    """Round ``amounts`` to multiples of ``unit`` by largest remainder without exceeding ``budget``.

    Every result is ``floor(a/unit)*unit`` or one unit more, never above ``upper`` (when given).
    Participants in ``priority`` (floors) are rounded up first, paid for by the others with the
    smallest remainders; the remaining whole units go by largest remainder.
    """
    units = amounts / unit
    base = np.floor(units + 1e-9).astype(np.int64)
    frac = units - base
    can_up = frac > 1e-9
    if upper is not None:
        can_up &= (base + 1) * unit <= upper + 1e-6
    total_units = budget // unit
    if priority is not None:
        up = priority & can_up
        base[up] += 1
        can_up &= ~up
        over = int(base.sum()) - total_units
        if over > 0:
            # take units back, first from non-priority participants with the smallest remainders
            key = np.where(base > 0, frac + np.where(priority, 2.0, 0.0), np.inf)
            base[np.argsort(key, kind="stable")[:over]] -= 1
    while base.sum() > total_units:  # guards float noise on huge inputs
        base[np.argmax(base)] -= 1
    spare = total_units - int(base.sum())
    if spare > 0 and can_up.any():
        k = min(spare, int(can_up.sum()))
        score = np.where(can_up, frac, -1.0)
        top = np.argsort(-score, kind="stable")[:k]  # ties go to the earlier participant
        base[top] += 1
    return np.asarray(base * unit, dtype=np.int64)


def cap_shares(world: World, params: PolicyParams) -> FloatArray:
    """Each participant's coverage cap as a share of its population (NaN: none): the policy's
    ``caps`` where it names the participant, else the participant's own ``coverage_cap``."""
    caps = world.participants["coverage_cap"].to_numpy(dtype=np.float64).copy()
    if params.caps:
        given = {str(k).upper(): float(v) for k, v in params.caps.items()}
        for i, code in enumerate(world.codes):
            if str(code).upper() in given:
                caps[i] = given[str(code).upper()]
    return caps


def with_policy_caps(world: World, params: PolicyParams) -> World:
    """``world`` whose ``coverage_cap`` column holds :func:`cap_shares` (for solvers that read it)."""
    if not params.caps:
        return world
    return world.with_participants(world.participants.assign(coverage_cap=cap_shares(world, params)))


def allocate_pro_rata(world: World, params: PolicyParams) -> Allocation:
    """COVAX phase-1 allocation of every lot in ``world.lots`` (see the module docstring)."""
    return allocate_weighted(world, params, None, policy="covax-pro-rata")


def allocate_weighted(
    world: World, params: PolicyParams, weight: FloatArray | None, *, policy: str
) -> Allocation:
    """The phase-1 machinery (buffer, tranche ceiling, caps, floors, shipping units) with each
    participant's share of every lot in proportion to population × ``weight`` (None: 1)."""
    parts = world.participants
    pop = parts["population"].to_numpy(dtype=np.float64)
    n = len(parts)
    covered = parts["people_covered"].to_numpy(dtype=np.float64) / pop
    cap_share = cap_shares(world, params)
    cap_share = np.where(np.isnan(cap_share), 1.0, cap_share)
    ceiling = float(params.tranches[-1])
    floor_per_100 = np.zeros(n)
    if params.small_state_floor is not None:
        small = pop <= params.small_state_floor.max_population
        floor_per_100[small] = params.small_state_floor.min_doses_per_100
    usable = world.usable()
    scale = None if weight is None else np.asarray(weight, dtype=np.float64) / float(np.max(weight))
    order = np.lexsort((world.lots.index.to_numpy(), world.lots["available"].to_numpy()))
    supply = world.lots["doses"].to_numpy(dtype=np.int64)
    doses = np.zeros((n, len(supply)), dtype=np.int64)
    buffer = np.zeros(len(supply), dtype=np.int64)
    remainder = np.zeros(len(supply), dtype=np.int64)
    levels: dict[str, float] = {}
    for lot in order:
        pid = world.lots["product"].iloc[lot]
        prod = world.products.loc[pid]
        course = float(prod["doses_per_course"])
        unit = int(prod["shipping_unit"]) if params.round_to_shipping_unit else 1
        buffer[lot] = int(np.floor(params.buffer * supply[lot] + 0.5))
        budget = int(supply[lot] - buffer[lot])
        elig = usable[:, lot] if scale is None else usable[:, lot] & (scale > 0)
        floor = floor_per_100[elig] / 100.0 / course
        level, raw = water_fill_level(
            pop[elig], course, covered[elig], floor, cap_share[elig], float(budget), ceiling,
            scale=None if scale is None else scale[elig],
        )
        capc = np.minimum(cap_share[elig], ceiling)
        upper = _doses_at(ceiling, pop[elig], course, covered[elig], np.minimum(floor, capc), capc)
        # a floor is a minimum: it may round up to the next whole shipping unit
        floor_doses = np.maximum(np.minimum(floor, capc) - covered[elig], 0.0) * pop[elig] * course
        upper = np.maximum(upper, np.ceil(floor_doses / unit - 1e-9) * unit)
        given = round_to_units(raw, unit, budget, upper=upper, priority=floor > 0)
        doses[elig, lot] = given
        remainder[lot] = budget - int(given.sum())
        covered = covered + doses[:, lot] / course / pop
        levels[str(world.lots.index[lot])] = level
    reached = np.searchsorted(np.asarray(params.tranches), covered - 1e-9)
    notes: dict[str, Any] = {
        "levels": levels,
        "coverage": covered,
        "tranche_reached": np.minimum(reached, len(params.tranches) - 1),
        "floor_per_100": floor_per_100,
    }
    return Allocation(
        policy=policy,
        participants=parts.index,
        lots=world.lots,
        doses=doses,
        buffer=buffer,
        remainder=remainder,
        params=params.model_dump(),
        notes=notes,
    )
