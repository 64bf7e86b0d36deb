"""From an allocation to doses per day, and from doses to vaccinated people.

Two steps, each accounting for every dose:

1. :func:`doses_from_allocation` (logistics): the doses of lot ``l`` for participant ``p``
   arrive on ``available_l + lead_time_days_p`` and are administered at the participant's
   absorptive capacity (``capacity_per_week / 7`` doses a day, shared by all lots, earliest
   expiry first; all on arrival when capacity is unlimited) until used or the lot expires on
   its expiry date. Doses left when a lot expires are *wasted*; doses still in stock (or not yet
   arrived) at the end of the horizon are *after_horizon*. ``administered + wasted +
   after_horizon == allocated`` per participant and lot.
2. :func:`administer` (in the engine, each day): ``doses / doses_per_course`` people start a
   course (the effective-course simplification: a course's doses count together on the day
   given, protection follows after the delay plus the dose interval). People are taken from
   the *eligible* — unvaccinated people who are susceptible (``S``) or recovered (``Ru``),
   since nobody knows who was infected; the latent and infectious are not vaccinated — by
   priority group (oldest first by default), pro rata within a group and between ``S`` and
   ``Ru``. A group never gives more people than it holds; doses with nobody left to take them
   are returned as *unused* per participant and product.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DoseSchedule:
    """Doses per day per participant × product, with the logistics' accounting per lot.

    ``doses``: (n, m, days) for ``products``; ``by_lot``: (n, L) administered;
    ``wasted``: (n, L) expired in stock; ``after_horizon``: (n, L) not used by the end.
    """

    products: tuple[str, ...]
    doses: FloatArray
    start: dt.date
    allocated: FloatArray
    by_lot: FloatArray
    wasted: FloatArray
    after_horizon: FloatArray
    lots: pd.DataFrame


def daily_capacity(world: World, allocation: Allocation, rollout_days: int | None = None,
                   daily_doses_per_100: float | None = None) -> FloatArray | None:
    """Doses per day per participant set by the epidemic settings (None: the participants' own capacity).

    ``rollout_days``: each participant gives its allocated doses evenly over that many days;
    ``daily_doses_per_100``: a participant gives at most that many doses per 100 people a day.
    With both, the smaller rate applies.
    """
    if rollout_days is None and daily_doses_per_100 is None:
        return None
    idx = allocation.participants.get_indexer(world.codes)
    cap = np.full(world.n, np.inf)
    if rollout_days is not None:
        cap = np.minimum(cap, allocation.doses[idx].sum(axis=1).astype(np.float64) / float(rollout_days))
    if daily_doses_per_100 is not None:
        cap = np.minimum(cap, world.population * daily_doses_per_100 / 100.0)
    return cap


def lot_schedule(
    alloc: FloatArray, arrive: npt.NDArray[np.int64], e_day: npt.NDArray[np.int64], cap: FloatArray, days: int
) -> tuple[FloatArray, FloatArray]:
    """Doses of each lot given per day, (N, L, days), and doses expired in stock, (N, L).

    ``alloc`` (N, L) doses arrive on day ``arrive`` (N, L) and are given at ``cap`` (N,) doses a
    day, earliest expiry first, until the lot expires on day ``e_day`` (L,). Rows are
    independent, so several allocations can be stacked along the first axis.
    """
    n, nl = alloc.shape
    order = np.argsort(e_day, kind="stable")
    per_lot = np.zeros((n, nl, days))
    stock = np.zeros((n, nl))
    wasted = np.zeros((n, nl))
    events = np.unique(np.concatenate([arrive.ravel(), e_day]))
    last_event = int(events.max()) if events.size else 0
    for d in range(days):
        hit = arrive == d
        if hit.any():
            stock += np.where(hit, alloc, 0.0)
        exp_now = e_day <= d
        if exp_now.any() and stock[:, exp_now].any():
            wasted[:, exp_now] += stock[:, exp_now]
            stock[:, exp_now] = 0.0
        if not stock.any():
            if d > last_event:
                break
            continue
        s = stock[:, order]
        before = np.cumsum(s, axis=1) - s
        use = np.clip(cap[:, None] - before, 0.0, s)
        stock[:, order] -= use
        per_lot[:, order, d] = use
    return per_lot, wasted


def doses_from_allocation(
    world: World, allocation: Allocation, days: int, start: dt.date | None = None,
    capacity_per_day: FloatArray | None = None,
) -> DoseSchedule:
    """Turn an allocation into doses per day (n, m, days) under lead times, capacity and expiry.

    ``capacity_per_day`` (n,) replaces the participants' ``capacity_per_week / 7`` when given.
    """
    lots = allocation.lots
    codes = world.codes
    idx = allocation.participants.get_indexer(codes)
    if (idx < 0).any():
        raise InputError("allocation lacks participants of the world", field="participants",
                         value=str(codes[np.flatnonzero(idx < 0)[0]]))
    alloc = allocation.doses[idx].astype(np.float64)
    n = alloc.shape[0]
    t0, a_day, e_day = world.lot_days(start, lots)  # days from the start, on the world's time axis
    lead = world.participants["lead_time_days"].to_numpy(dtype=np.int64)
    arrive = np.maximum(a_day[None, :] + lead[:, None], 0)
    cap = world.participants["capacity_per_week"].to_numpy(dtype=np.float64) / 7.0
    if capacity_per_day is not None:
        cap = np.asarray(capacity_per_day, dtype=np.float64)
    per_lot, wasted = lot_schedule(alloc, arrive.astype(np.int64), np.asarray(e_day, dtype=np.int64), cap, days)
    by_lot = per_lot.sum(axis=2)
    after = alloc - by_lot - wasted
    products = tuple(dict.fromkeys(str(p) for p in lots["product"]))
    lot_prod = np.array([products.index(str(p)) for p in lots["product"]])
    doses = np.zeros((n, len(products), days))
    for j, k in enumerate(lot_prod):
        doses[:, k, :] += per_lot[:, j, :]
    return DoseSchedule(
        products=products,
        doses=doses,
        start=t0,
        allocated=alloc,
        by_lot=by_lot,
        wasted=wasted,
        after_horizon=np.maximum(after, 0.0),
        lots=lots,
    )
