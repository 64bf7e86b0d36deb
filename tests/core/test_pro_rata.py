from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dosewise.policies import allocate_pro_rata, round_to_units
from dosewise.scenario import load_demo, parse_scenario
from dosewise.world import World, build_world


@pytest.fixture(scope="module")
def demo() -> tuple[World, Any]:
    sc = load_demo()
    world = build_world(sc)
    return world, allocate_pro_rata(world, sc.policy)


def test_demo_reproduces_interim_forecast_shape(demo: tuple[World, Any]) -> None:
    """Feb 2021 interim forecast: every AZ/SII recipient at one level of doses per 100, multiples of
    2,400, small states above their pro rata share, India held at its published 7.04 per 100 (its
    supply deal). The level is above the forecast's ~7.7 because the demo leaves out the
    self-financing participants the envelope also served (README: the demo against the published
    figures)."""
    world, alloc = demo
    assert (alloc.doses % 2400 == 0).all()
    per100 = 100 * alloc.totals() / world.population
    india = np.asarray(world.codes == "IND")
    assert abs(per100[india][0] - 7.04) <= 100 * 2400 / world.population[india][0] + 1e-9
    small = world.population <= 1_000_000
    big = ~small & ~india
    assert 7.5 < np.median(per100[big]) < 8.6
    # equal doses per 100 up to one shipping unit of rounding
    assert np.all(np.abs(per100[big] - np.median(per100[big])) <= 100 * 2400 / world.population[big] + 1e-9)
    assert (per100[small] >= 14 - 1e-9).all()
    assert (per100[small] > np.median(per100[big])).all()
    prk = list(world.codes).index("PRK")
    assert 1_900_000 < alloc.totals()[prk] < 2_300_000  # forecast: 1,992,000 with WPP 2019 population
    lots = alloc.per_lot()
    assert (lots["buffer"] == (0.05 * lots["supply"]).round()).all()
    assert ((lots["allocated"] + lots["buffer"] + lots["remainder"]) == lots["supply"]).all()


def scenario(pops: dict[str, float], doses: int, **policy: Any) -> dict[str, Any]:
    return {
        "participants": {"units": [{"id": k, "population": v, "parent": "KEN"} for k, v in pops.items()]},
        "lots": [{"id": "L", "product": "AZD1222", "doses": doses, "available": "2021-03-01",
                  "expiry": "2021-09-01"}],
        "policy": {"buffer": 0.0, **policy},
    }


def run(data: dict[str, Any]) -> tuple[World, Any]:
    sc = parse_scenario(data)
    world = build_world(sc)
    return world, allocate_pro_rata(world, sc.policy)


def test_tranche_ceiling_leaves_rest_in_pool() -> None:
    _world, alloc = run(scenario({"A": 1_000_000, "B": 2_000_000}, 10_000_000))
    # 20% ceiling × 2 doses = 400,000 and 800,000 doses, rounded down to whole 2,400-dose units
    assert alloc.totals().tolist() == [398_400, 799_200]
    assert alloc.remainder[0] == 10_000_000 - alloc.doses.sum()
    assert (alloc.notes["tranche_reached"] == 1).all()


def test_first_tranche_fills_before_anyone_goes_higher() -> None:
    _world, alloc = run(scenario({"A": 1_000_000, "B": 3_000_000}, 240_000, round_to_shipping_unit=False))
    cov = alloc.notes["coverage"]
    assert cov[0] == pytest.approx(cov[1]) and cov[0] == pytest.approx(0.03)


def test_cap_redistributes_to_others() -> None:
    _world, alloc = run(scenario({"A": 1_000_000, "B": 1_000_000}, 200_000, caps={"A": 0.02},
                                round_to_shipping_unit=False))
    assert alloc.totals()[0] == 40_000  # 2% × 1e6 × 2 doses
    assert alloc.totals()[1] == 160_000


def test_floor_for_small_states() -> None:
    _world, alloc = run(scenario({"A": 50_000, "B": 10_000_000}, 1_000_000,
                                small_state_floor={"max_population": 100_000, "min_doses_per_100": 20}))
    assert alloc.totals()[0] >= 10_000
    assert alloc.totals()[0] / 50_000 > alloc.totals()[1] / 10_000_000


def test_round_to_units_never_exceeds_budget() -> None:
    got = round_to_units(np.array([3599.0, 1200.0, 7201.0]), 2400, 9600)
    assert got.sum() <= 9600 and (got % 2400 == 0).all()


pops = st.lists(st.floats(min_value=1e3, max_value=1e8), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pops=pops, doses=st.integers(min_value=1, max_value=50_000_000), unit=st.sampled_from(["AZD1222", "BNT162b2",
                                                                                             "CoronaVac"]),
       decline=st.lists(st.booleans(), min_size=25, max_size=25), buffer=st.floats(0, 0.2))
def test_invariants(pops: list[float], doses: int, unit: str, decline: list[bool], buffer: float) -> None:
    names = [f"P{i}" for i in range(len(pops))]
    data = scenario(dict(zip(names, pops, strict=True)), doses, buffer=buffer)
    data["lots"][0]["product"] = unit
    data["participants"]["units"] = [
        {**u, **({"declines": [unit]} if decline[i] else {})} for i, u in enumerate(data["participants"]["units"])
    ]
    world, alloc = run(data)
    total = alloc.doses.sum() + alloc.buffer.sum() + alloc.remainder.sum()
    assert total == doses
    assert alloc.doses.sum() <= doses
    # nobody gets a product it does not accept
    assert (alloc.doses[~world.usable()] == 0).all()
    # among participants with no floor or cap, larger population never gets fewer doses
    got = alloc.totals()
    pop = world.population
    ok = world.usable()[:, 0]
    shipping = int(world.products.loc[unit, "shipping_unit"])
    # (rounding to shipping units may reorder two participants by at most one unit)
    order = np.argsort(pop[ok], kind="stable")
    assert np.all(np.diff(got[ok][order]) >= -shipping)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, np.inf, -np.inf, np.nan]), min_size=1, max_size=40),
       st.integers(min_value=-1, max_value=45))
def test_first_smallest_is_the_stable_sort_prefix(values: list[float], k: int) -> None:
    """Rounding picks who gets the spare shipping units by a partition, not a full sort: the same
    participants as a stable sort would (ties to the earlier one), NaN and infinities included."""
    from dosewise.policies.pro_rata import first_smallest

    key = np.array(values)
    expected = np.sort(np.argsort(key, kind="stable")[:max(k, 0)])
    assert np.array_equal(first_smallest(key, k), expected)


def _plain_level(pop: np.ndarray, course: float, covered: np.ndarray, floor: np.ndarray, cap: np.ndarray,
                 supply: float, top: float, scale: np.ndarray | None) -> float:
    """The water-filling level by plain bisection over every participant (the reference)."""
    def total(c: float) -> float:
        target = np.minimum(np.maximum(c if scale is None else c * scale, floor), cap)
        return float((np.maximum(target - covered, 0.0) * pop * course).sum())

    lo, hi = 0.0, top
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        lo, hi = (lo, mid) if total(mid) > supply else (mid, hi)
    return lo


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32 - 1),
       st.floats(min_value=0.01, max_value=1.5), st.booleans(), st.booleans())
def test_water_fill_level_matches_plain_bisection(n: int, seed: int, share: float, floors: bool,
                                                  weighted: bool) -> None:
    """The bisection that sets participants aside (constant or linear over the bracket) finds the
    level plain bisection over everyone finds, and its doses never exceed the supply."""
    from dosewise.policies.pro_rata import _doses_at, water_fill_level

    rng = np.random.default_rng(seed)
    pop = rng.lognormal(10, 1.5, n).round() + 1
    covered = np.where(rng.random(n) < 0.5, rng.uniform(0, 0.25, n), 0.0)
    cap = np.where(rng.random(n) < 0.3, rng.uniform(0.01, 0.3, n), 1.0)
    floor = np.where(rng.random(n) < 0.3, rng.uniform(0, 0.1, n), 0.0) if floors else np.zeros(n)
    scale = rng.uniform(0.05, 1.0, n) if weighted else None
    course, ceiling = 2.0, 0.2
    capc = np.minimum(cap, ceiling)
    fl = np.minimum(floor, capc)
    top_level = ceiling if scale is None else ceiling / float(scale.min())
    full = float(_doses_at(top_level, pop, course, covered, fl, capc, scale).sum())
    supply = share * full
    level, doses = water_fill_level(pop, course, covered, floor, cap, supply, ceiling, scale=scale)
    assert doses.sum() <= supply * (1 + 1e-12) + 1e-6
    base = float(_doses_at(0.0, pop, course, covered, fl, capc, scale).sum())
    if base < supply < full:
        ref = _plain_level(pop, course, covered, fl, capc, supply, top_level, scale)
        assert abs(level - ref) <= 1e-9 * max(ref, 1e-3)
        assert doses.sum() == pytest.approx(supply, rel=1e-9)
