"""From allocation to doses per day: lead time, capacity, expiry; every dose accounted for."""

from __future__ import annotations

import numpy as np

from dosewise.impact import ImpactParams, doses_from_allocation, run_impact
from dosewise.registry import get_policy
from dosewise.scenario import PolicyParams
from dosewise.world import World


def test_every_allocated_dose_is_accounted_for(small_world: World) -> None:
    alloc = get_policy("covax-pro-rata")(small_world, PolicyParams())
    sched = doses_from_allocation(small_world, alloc, days=200)
    np.testing.assert_allclose(sched.by_lot + sched.wasted + sched.after_horizon, sched.allocated, rtol=1e-12)
    np.testing.assert_allclose(sched.doses.sum(axis=2).sum(axis=1), sched.by_lot.sum(axis=1), rtol=1e-12)
    # capacity: 500,000 doses a week, shared by both lots
    assert sched.doses.sum(axis=1).max() <= 500_000 / 7 * (1 + 1e-12)
    # the Pfizer lot (expiring 1 Apr 2021, 45 days after arrival) cannot all be used at that rate after AZ:
    # AZ expires later, so Pfizer goes first and the big participants still waste some
    pf = list(alloc.lots.index).index("PF")
    assert sched.wasted[:, pf].sum() > 0
    assert sched.products == ("AZD1222", "BNT162b2")


def test_lead_time_delays_arrival(small_world: World) -> None:
    alloc = get_policy("covax-pro-rata")(small_world, PolicyParams())
    parts = small_world.participants.copy()
    parts["lead_time_days"] = 30
    later = doses_from_allocation(small_world.with_participants(parts), alloc, days=200)
    assert later.doses[:, :, :30].sum() == 0
    assert later.doses[:, :, 30].sum() > 0


def test_unlimited_capacity_gives_everything_on_arrival(small_world: World) -> None:
    alloc = get_policy("covax-pro-rata")(small_world, PolicyParams())
    parts = small_world.participants.copy()
    parts["capacity_per_week"] = np.inf
    sched = doses_from_allocation(small_world.with_participants(parts), alloc, days=200)
    days_used = np.flatnonzero(sched.doses.sum(axis=(0, 1)))
    assert list(days_used) == [0, 14]  # AZ on 1 Feb, Pfizer on 15 Feb
    assert sched.wasted.sum() == 0


def test_run_impact_frames_and_summary(small_world: World) -> None:
    alloc = get_policy("covax-pro-rata")(small_world, PolicyParams())
    res = run_impact(small_world, alloc, ImpactParams(days=120))
    per = res.by_participant
    assert list(per.index) == list(small_world.codes)
    assert (per["deaths_averted"] > 0).all()
    np.testing.assert_allclose(per["deaths_no_vaccine"] - per["deaths"], per["deaths_averted"])
    by_age = res.by_age
    assert len(by_age) == 16 * small_world.n
    np.testing.assert_allclose(by_age["deaths_averted"].groupby(level=0).sum()[per.index], per["deaths_averted"])
    weeks = res.by_week
    np.testing.assert_allclose(weeks["deaths_averted"].groupby(level="participant").sum()[per.index],
                               per["deaths_averted"], rtol=1e-9)
    s = res.summary()
    assert s["doses_administered"] + s["doses_unused"] + s["doses_wasted"] + s["doses_after_horizon"] == \
        __import__("pytest").approx(s["doses_allocated"], rel=1e-9)
    assert s["deaths_averted_per_100_doses"] == __import__("pytest").approx(
        100 * s["deaths_averted"] / s["doses_administered"])
