from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dosewise.errors import InputError
from dosewise.policies import allocate_need_weighted, allocate_pro_rata
from dosewise.scenario import load_demo, parse_scenario, policy_params
from dosewise.world import build_world


def scenario(need: dict[str, float] | None, **options: Any) -> dict[str, Any]:
    return {
        "participants": {"include": ["KEN", "UGA", "NPL", "BGD"]},
        "lots": [{"id": "L", "product": "CoronaVac", "doses": 10_000_000, "available": "2021-08-30",
                  "expiry": "2022-02-28"}],
        "policy": {"name": "covax-need-weighted", "buffer": 0.0,
                   "options": {**({"need": need} if need is not None else {}), **options}},
    }


def test_shares_follow_population_times_need() -> None:
    need = {"KEN": 0.8, "UGA": 0.4, "NPL": 0.2, "BGD": 0.6}
    sc = parse_scenario(scenario(need))
    world = build_world(sc)
    alloc = allocate_need_weighted(world, sc.policy)
    per_capita = alloc.totals() / world.population
    ratios = per_capita / np.array([need[c] for c in world.codes])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    assert alloc.doses.sum() == 10_000_000
    # same supply, same machinery: equal need gives exactly the pro-rata allocation
    flat = parse_scenario(scenario(dict.fromkeys(need, 0.5)))
    assert np.array_equal(allocate_need_weighted(world, flat.policy).doses,
                          allocate_pro_rata(world, flat.policy).doses)


def test_missing_need_is_an_error_unless_excluded() -> None:
    sc = parse_scenario(scenario({"KEN": 0.8, "UGA": 0.4, "NPL": 0.2}))
    world = build_world(sc)
    with pytest.raises(InputError, match="BGD"):
        allocate_need_weighted(world, sc.policy)
    sc = parse_scenario(scenario({"KEN": 0.8, "UGA": 0.4, "NPL": 0.2}, missing_need="exclude"))
    alloc = allocate_need_weighted(world, sc.policy)
    assert alloc.totals()[list(world.codes).index("BGD")] == 0
    with pytest.raises(InputError, match="needs need scores"):
        allocate_need_weighted(world, parse_scenario(scenario(None)).policy)


def test_need_weighted_on_real_who_feed(shared_data: Path) -> None:
    """AMC92 as of the week before the CoronaVac round: need from the real WHO weekly file."""
    sc = load_demo()
    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    params = policy_params(sc.policy, name="covax-need-weighted", who=str(who), as_of="2021-08-29")
    world = build_world(sc)
    alloc = allocate_need_weighted(world, params)
    need = alloc.notes["need"]
    assert np.isfinite(need).all() and (need > 0).all()
    lots = alloc.per_lot()
    assert ((lots["allocated"] + lots["buffer"] + lots["remainder"]) == lots["supply"]).all()
    assert (alloc.doses % 2400 == 0).all()
    # among participants without a floor, more need means more doses per person
    big = world.population > 1_000_000
    per_capita = alloc.totals()[big] / world.population[big]
    order = np.argsort(need[big])
    assert np.corrcoef(need[big][order], per_capita[order])[0, 1] > 0.95
