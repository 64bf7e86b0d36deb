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
    level = _bisect_level(pop, course, covered, floor, cap, scale, supply, top_level, iterations)
    return level, _doses_at(level, pop, course, covered, floor, cap, scale)


def _bisect_level(
    pop: FloatArray,
    course: float,
    covered: FloatArray,
    floor: FloatArray,
    cap: FloatArray,
    scale: FloatArray | None,
    supply: float,
    top_level: float,
    iterations: int,
) -> float:
    """The largest level in ``[0, top_level]`` whose doses stay within ``supply``, by bisection
    with the participants set aside as the bracket narrows.

    Participant i's doses, as a function of the level c, are constant up to
    ``max(floor_i, covered_i) / scale_i``, then linear (``pop_i * course * (c * scale_i -
    covered_i)``) up to ``cap_i / scale_i``, then constant again. Every few halvings, the
    participants whose doses are constant over the whole bracket are summed once and those that
    are linear over it are folded into one slope and intercept; the bisection then evaluates
    only the rest. When nobody is left the level is the root of that line. A million
    participants thus cost a few passes over the arrays instead of one per halving.
    """
    n = len(pop)
    s = np.ones(n) if scale is None else np.asarray(scale, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(s > 0, np.maximum(floor, covered) / s, np.inf)
        upper = np.where(s > 0, cap / s, np.inf)
    fixed = 0.0  # doses of the participants set aside as constant over the bracket
    slope = 0.0  # Σ pop·course·scale and Σ -pop·course·covered of those set aside as linear over it
    intercept = 0.0
    rest = (pop, covered, floor, cap, s, lower, upper)
    lo, hi = 0.0, top_level
    level: float | None = None
    for i in range(iterations):
        if i % 2 == 0:
            r_pop, r_cov, r_floor, r_cap, r_s, r_lower, r_upper = rest
            const = (r_upper <= lo) | (r_lower >= hi) | (r_lower >= r_upper)
            linear = ~const & (r_lower <= lo) & (r_upper >= hi)
            if const.any():
                fixed += float(_doses_at(lo, r_pop[const], course, r_cov[const], r_floor[const], r_cap[const],
                                         r_s[const]).sum())
            if linear.any():
                weight = r_pop[linear] * course
                slope += float((weight * r_s[linear]).sum())
                intercept -= float((weight * r_cov[linear]).sum())
            keep = ~(const | linear)
            if not keep.all():
                rest = tuple(a[keep] for a in rest)  # type: ignore[assignment]
            if not len(rest[0]):
                level = lo if slope <= 0 else min(max((supply - fixed - intercept) / slope, lo), hi)
                break
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:  # lo and hi are adjacent floats: later passes change nothing
            break
        r_pop, r_cov, r_floor, r_cap, r_s = rest[:5]
        total = fixed + intercept + slope * mid + float(_doses_at(mid, r_pop, course, r_cov, r_floor, r_cap,
                                                                   r_s).sum())
        if total > supply:
            hi = mid
        else:
            lo = mid
    if level is None:
        level = lo
    # the sums above group the participants differently from one plain sum: make sure the doses
    # at the level found, summed as the caller will, stay within supply (step down if not)
    step = max(level, 1e-300) * 1e-15
    while level > 0 and float(_doses_at(level, pop, course, covered, floor, cap, scale).sum()) > supply:
        level = max(level - step, 0.0)
        step *= 16
    return level


def first_smallest(key: FloatArray, k: int) -> npt.NDArray[np.intp]:
    """The positions of the ``k`` smallest values of ``key``, ties to the earlier position: the
    same set as ``np.argsort(key, kind="stable")[:k]`` (in position order), found by a partition
    (linear time) instead of a full sort."""
    n = len(key)
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if k >= n:
        return np.arange(n, dtype=np.intp)
    kth = np.partition(key, k - 1)[k - 1]
    if kth != kth:  # NaN among the k smallest: the sort's order (NaN last) decides
        return np.sort(np.argsort(key, kind="stable")[:k])
    below = np.flatnonzero(key < kth)
    ties = np.flatnonzero(key == kth)[: k - len(below)]
    return np.sort(np.concatenate([below, ties]))


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
            base[first_smallest(key, over)] -= 1
    while base.sum() > total_units:  # guards float noise on huge inputs
        base[np.argmax(base)] -= 1
    spare = total_units - int(base.sum())
    if spare > 0 and can_up.any():
        k = min(spare, int(can_up.sum()))
        score = np.where(can_up, frac, -1.0)
        top = first_smallest(-score, k)  # ties go to the earlier participant
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
    products = world.lots["product"].to_numpy()
    for lot in order:
        prod = world.products.loc[products[lot]]
        course = float(prod["doses_per_course"])
        unit = int(prod["shipping_unit"]) if params.round_to_shipping_unit else 1
        buffer[lot] = int(np.floor(params.buffer * supply[lot] + 0.5))
        budget = int(supply[lot] - buffer[lot])
        elig = usable[:, lot] if scale is None else usable[:, lot] & (scale > 0)
        # everyone eligible (the common case): views, not copies of every column
        sel: slice | npt.NDArray[np.intp] = slice(None) if elig.all() else np.flatnonzero(elig)
        pop_e, covered_e, cap_e = pop[sel], covered[sel], cap_share[sel]
        floor = floor_per_100[sel] / 100.0 / course
        level, raw = water_fill_level(
            pop_e, course, covered_e, floor, cap_e, float(budget), ceiling,
            scale=None if scale is None else scale[sel],
        )
        capc = np.minimum(cap_e, ceiling)
        upper = _doses_at(ceiling, pop_e, course, covered_e, np.minimum(floor, capc), capc)
        # a floor is a minimum: it may round up to the next whole shipping unit
        floor_doses = np.maximum(np.minimum(floor, capc) - covered_e, 0.0) * pop_e * course
        upper = np.maximum(upper, np.ceil(floor_doses / unit - 1e-9) * unit)
        given = round_to_units(raw, unit, budget, upper=upper, priority=floor > 0)
        doses[sel, lot] = given
        remainder[lot] = budget - int(given.sum())
        covered[sel] = covered_e + given / course / pop_e
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
