"""The optimisation problem as plain NumPy arrays: what :func:`build_variables` and
:func:`build_lp` read.

:class:`ProblemData` holds nothing but arrays and scalars, so a test can write one by hand and
the benchmark can generate one of any size; :func:`problem_from_world` fills it from a
:class:`~dosewise.world.World`, the policy parameters and the impact model's tier values.

Weeks
    Week ``w`` starts ``start + 7w`` days. A lot can be delivered from the first week that starts
    on or after its availability date plus the participant's lead time, and only while the
    delivery date plus the participant's minimum shelf life on arrival is not after expiry.

Value of a dose
    ``value[i, l, w, t] = deaths_averted_per_dose[i, t] * product_factor[l] * discount[w]``:
    the impact model's marginal deaths averted per dose given to tier ``t`` (oldest first) of
    participant ``i``, scaled by the lot's product efficacy against death relative to the
    product the tier values were computed for, and by a discount that falls linearly from 1 in
    week 0 to ``1 - late_discount`` at the end of the horizon (a dose given later averts fewer
    deaths because part of the epidemic has already happened; Hogan et al. 2021 show the value
    of doses falling with delay). Concavity — marginal value falling as coverage rises — comes
    from the tiers: each tier holds a bounded number of people.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.errors import AllocationError, InputError
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_WEEKS = 52
DEFAULT_TIERS = 4
DEFAULT_LATE_DISCOUNT = 0.5
"""A dose delivered at the end of a 52-week horizon is worth half a dose delivered now (modelling
choice, not a measured figure; set ``options.late_discount`` or pass tier values by week)."""


@dataclass(frozen=True)
class ProblemData:
    """Every input of the allocation LP, as arrays (n participants, L lots, W weeks, T tiers).

    ===================  ========  ===============================================================
    field                shape     meaning
    ===================  ========  ===============================================================
    ``usable``           (n, L)    participant accepts, is approved for and can store the product
    ``first_week``       (n, L)    first deliverable week (availability + lead time)
    ``last_week``        (n, L)    last deliverable week (expiry − minimum shelf life on arrival)
    ``value``            (n, T)    deaths averted per dose in each tier, week 0, reference product
    ``product_factor``   (L,)      relative efficacy against death of the lot's product
    ``discount``         (W,)      relative value of a dose delivered in week w
    ``budget``           (L,)      doses of each lot the LP may allocate (after any buffer)
    ``course``           (L,)      doses per course of the lot's product
    ``unit``             (L,)      shipping unit of the lot's product (1: none)
    ``capacity``         (n,)      doses a participant can absorb per week (inf: unconstrained)
    ``tier_people``      (n, T)    people still to vaccinate in each tier
    ``floor``            (n,)      minimum total doses (equity floor; 0: none)
    ``share_cap``        (n,)      maximum total doses (inf: none)
    ``lot_factor``       (n, L)    optional relative value of lot l for participant i
    ===================  ========  ===============================================================
    """

    usable: BoolArray
    first_week: IntArray
    last_week: IntArray
    value: FloatArray
    product_factor: FloatArray
    discount: FloatArray
    budget: IntArray
    course: FloatArray
    unit: IntArray
    capacity: FloatArray
    tier_people: FloatArray
    floor: FloatArray
    share_cap: FloatArray
    participants: pd.Index = field(default_factory=lambda: pd.Index([]))
    lots: pd.Index = field(default_factory=lambda: pd.Index([]))
    lot_factor: FloatArray | None = None
    """(n, L) relative value of a dose of lot l for participant i (None: 1); the model-based values
    (:mod:`dosewise.optimize.model`) put each lot's timing and efficacy here."""
    start: dt.date | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.usable.shape[0])

    @property
    def n_lots(self) -> int:
        return int(self.usable.shape[1])

    @property
    def weeks(self) -> int:
        return int(self.discount.shape[0])

    @property
    def tiers(self) -> int:
        return int(self.value.shape[1])

    def __post_init__(self) -> None:
        n, L = self.usable.shape
        T = self.value.shape[1] if self.value.ndim == 2 else -1
        expect = {
            "first_week": (n, L),
            "last_week": (n, L),
            "value": (n, T),
            "product_factor": (L,),
            "budget": (L,),
            "course": (L,),
            "unit": (L,),
            "capacity": (n,),
            "tier_people": (n, T),
            "floor": (n,),
            "share_cap": (n,),
        }
        for name, shape in expect.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise InputError(f"expected shape {shape}, got {got}", field=f"optimize.{name}")
        for name in ("value", "tier_people", "capacity", "budget", "floor"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if np.isnan(arr).any():
                rows = np.unique(np.nonzero(np.isnan(arr))[0])[:5]
                who = [str(self.participants[r]) if len(self.participants) > r else str(r) for r in rows]
                raise InputError("missing values (NaN)", field=f"optimize.{name}", value=who)
            if (arr < 0).any():
                raise InputError("negative values", field=f"optimize.{name}")

    def with_(self, **changes: Any) -> ProblemData:
        return replace(self, **changes)


def linear_discount(weeks: int, late_discount: float) -> FloatArray:
    """1 at week 0 falling linearly to ``1 - late_discount`` at week ``weeks``."""
    if not 0.0 <= late_discount < 1.0:
        raise InputError("must be in [0, 1)", field="policy.options.late_discount", value=late_discount)
    return np.asarray(1.0 - late_discount * np.arange(weeks) / weeks, dtype=np.float64)


def fold_tiers(sizes: FloatArray, covered: FloatArray, cap_people: FloatArray) -> FloatArray:
    """People left to vaccinate per tier: those already covered leave the oldest tiers first, and a
    coverage cap removes people from the youngest tiers (vaccination runs oldest first)."""
    cum = np.cumsum(sizes, axis=1)
    before = cum - sizes
    hi = np.minimum(cum, cap_people[:, None])
    lo = np.maximum(before, covered[:, None])
    return np.asarray(np.clip(hi - lo, 0.0, None), dtype=np.float64)


def problem_from_world(
    world: World,
    *,
    tier_sizes: FloatArray,
    deaths_averted_per_dose: FloatArray,
    product_factor_by_product: pd.Series | None = None,
    weeks: int = DEFAULT_WEEKS,
    late_discount: float = DEFAULT_LATE_DISCOUNT,
    buffer: float = 0.0,
    floor_doses: FloatArray | None = None,
    max_share: float | None = None,
    start: dt.date | None = None,
) -> ProblemData:
    """Fill :class:`ProblemData` from a world and the impact model's tier values.

    ``tier_sizes`` and ``deaths_averted_per_dose`` are (n, T), oldest tier first, in the order
    of ``world.participants``. ``product_factor_by_product`` maps product id to its efficacy
    against death relative to the product the tier values assume (default 1 for all).
    """
    parts = world.participants
    lots = world.lots
    n, L = world.n, len(lots)
    if weeks < 1:
        raise InputError("must be at least 1", field="policy.options.weeks", value=weeks)
    tier_sizes = np.asarray(tier_sizes, dtype=np.float64)
    dap = np.asarray(deaths_averted_per_dose, dtype=np.float64)
    if tier_sizes.shape != dap.shape or tier_sizes.shape[0] != n:
        raise AllocationError(
            f"tier values have shape {tier_sizes.shape} / {dap.shape}, expected ({n}, tiers) for {n} participants"
        )
    bad = ~np.isfinite(dap).all(axis=1) | ~np.isfinite(tier_sizes).all(axis=1)
    if bad.any():
        raise AllocationError(
            "the impact model gives no tier values for " + ", ".join(map(str, parts.index[np.flatnonzero(bad)][:10]))
            + " (no age structure: set `age_structure_like:` in the scenario's overrides)"
        )
    start_day, a_day, e_day = world.lot_days(start)  # days from the start, on the world's time axis
    avail = np.ceil(a_day / 7.0 - 1e-9).astype(np.int64)
    expiry_w = e_day / 7.0
    lead = np.ceil(parts["lead_time_days"].to_numpy(dtype=np.float64) / 7.0 - 1e-9).astype(np.int64)
    shelf = parts["min_shelf_life_days"].to_numpy(dtype=np.float64) / 7.0
    first = np.maximum(avail[None, :] + lead[:, None], 0)
    last = np.minimum(np.floor(expiry_w[None, :] - shelf[:, None] + 1e-9).astype(np.int64), weeks - 1)

    pids = lots["product"].to_numpy()
    prod = world.products.loc[pids]
    course = prod["doses_per_course"].to_numpy(dtype=np.float64)
    unit = prod["shipping_unit"].to_numpy(dtype=np.int64)
    if product_factor_by_product is None:
        pf = np.ones(L)
    else:
        pf = product_factor_by_product.reindex(pids).to_numpy(dtype=np.float64)
        if np.isnan(pf).any():
            raise AllocationError(f"no efficacy factor for products {sorted(set(pids[np.isnan(pf)]))}")
    supply = lots["doses"].to_numpy(dtype=np.int64)
    buf = np.floor(buffer * supply + 0.5).astype(np.int64)
    budget = supply - buf

    pop = parts["population"].to_numpy(dtype=np.float64)
    capshare = parts["coverage_cap"].to_numpy(dtype=np.float64)
    cap_people = np.where(np.isnan(capshare), np.inf, capshare * pop)
    covered = parts["people_covered"].to_numpy(dtype=np.float64)
    people = fold_tiers(tier_sizes, covered, cap_people)
    floor = np.zeros(n) if floor_doses is None else np.asarray(floor_doses, dtype=np.float64)
    share_cap = np.full(n, np.inf) if max_share is None else np.full(n, float(max_share) * float(budget.sum()))
    return ProblemData(
        usable=world.usable(),
        first_week=first,
        last_week=last,
        value=dap,
        product_factor=pf,
        discount=linear_discount(weeks, late_discount),
        budget=budget,
        course=course,
        unit=unit,
        capacity=parts["capacity_per_week"].to_numpy(dtype=np.float64),
        tier_people=people,
        floor=floor,
        share_cap=share_cap,
        participants=parts.index,
        lots=lots.index,
        start=start_day,
        meta={"buffer": buf, "late_discount": late_discount},
    )


def aggregate_weeks(data: ProblemData, k: int) -> ProblemData:
    """The same problem in periods of ``k`` weeks: a restriction, so its optimum is feasible for
    ``data`` and at most ``data``'s optimum.

    Period ``p`` covers weeks ``[k p, k p + k)``; its doses are meant to be delivered evenly over
    those weeks, so a lot may use period ``p`` only if every one of its weeks lies in the lot's
    window, capacity per period is ``k`` weeks' capacity and the value of a dose is the mean
    discount of the period's weeks. Spreading a period's doses evenly over its weeks gives a
    schedule of the weekly model that keeps every constraint. Used to bring very large instances
    (the 10,000-unit sub-national benchmark) within reach of the solver; say so when reporting.
    """
    if k < 1:
        raise InputError("must be at least 1", field="weeks_per_period", value=k)
    if k == 1:
        return data
    periods = data.weeks // k
    if periods < 1:
        raise InputError(f"fewer than {k} weeks in the horizon", field="weeks_per_period", value=k)
    first = -(-np.maximum(data.first_week, 0) // k)  # ceil: the period starts on or after the first week
    last = (np.minimum(data.last_week, data.weeks - 1) + 1) // k - 1  # the period ends by the last week
    discount = data.discount[: periods * k].reshape(periods, k).mean(axis=1)
    return data.with_(
        first_week=first.astype(np.int64),
        last_week=last.astype(np.int64),
        discount=np.asarray(discount, dtype=np.float64),
        capacity=data.capacity * k,
        meta={**data.meta, "weeks_per_period": k},
    )
