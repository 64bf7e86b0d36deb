"""Re-optimising after a decline: warm, in place, and equal to a cold solve of the same problem."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from dosewise.optimize import build_lp, reoptimize_after_decline, solve_lp, solve_optimal
from dosewise.optimize.assign import schedule_state
from dosewise.optimize.solve import read_solution
from dosewise.scenario import Scenario, policy_params
from dosewise.world import World


def test_decline_moves_only_returned_doses(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    sizes, dap = demo_tiers
    p = policy_params(demo_scenario.policy, name="optimal", equity_floor=0.5)
    st = solve_optimal(demo_world, p, tier_sizes=sizes, deaths_averted_per_dose=dap)
    a = st.allocation
    lot = "SII-AZ-2021H1"
    li = demo_world.lots.index.get_loc(lot)
    who = str(a.participants[np.argmax(a.doses[:, li])])
    returned = int(a.doses[a.participants.get_loc(who), li])
    before = st.x.copy()
    other_lots = st.lp.variables.lot != li

    new = reoptimize_after_decline(st, who, lot, returned)

    assert new[who] == 0
    assert 0 < new.sum() <= returned
    assert (new % 2400 == 0).all()
    np.testing.assert_allclose(st.x[other_lots], before[other_lots], atol=1e-6)
    mine = (st.lp.variables.part == a.participants.get_loc(who)) & (st.lp.variables.lot == li)
    assert st.x[mine].sum() == pytest.approx(0.0, abs=1e-6)
    # nobody lost doses of the lot
    assert (st.x[~mine] >= before[~mine] - 1e-6).all()

    # a cold solve of the very same modified model reaches the same optimum
    cold = highspy.Highs()
    cold.setOptionValue("output_flag", False)
    cold.passModel(st.highs.getLp())
    cold.run()
    warm_obj = st.lp.value @ st.x
    cold_sol = read_solution(cold, st.lp, 0.0)
    assert cold_sol.objective == pytest.approx(warm_obj, rel=1e-9)

    # and a cold solve of the reduced problem — only this lot, only the returned doses, the people,
    # floors and caps the others still have room for — gains exactly what the warm re-solve gained
    gain = float(st.lp.value @ ((st.x - before) * ~other_lots * ~mine))
    d = st.data
    base = np.where(mine, 0.0, before)
    _, people, total = schedule_state(st.lp, base)
    usable = np.zeros_like(d.usable)
    usable[:, li] = d.usable[:, li]
    usable[a.participants.get_loc(who)] = False
    budget = np.zeros_like(d.budget)
    budget[li] = returned
    reduced = d.with_(
        usable=usable,
        budget=budget,
        tier_people=np.clip(d.tier_people - people, 0.0, None),
        floor=np.zeros(d.n),
        share_cap=d.share_cap - total,
    )
    assert np.isinf(d.capacity).all()  # the reduced model needs no per-week capacity left
    cold_reduced = solve_lp(build_lp(reduced))
    assert cold_reduced.objective == pytest.approx(gain, rel=1e-6)


def test_second_decline_builds_on_first(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    sizes, dap = demo_tiers
    p = policy_params(demo_scenario.policy, name="optimal")
    st = solve_optimal(demo_world, p, tier_sizes=sizes, deaths_averted_per_dose=dap)
    first = reoptimize_after_decline(st, "IND", "SII-AZ-2021H1")
    taker = str(first.idxmax())
    second = reoptimize_after_decline(st, taker, "SII-AZ-2021H1", int(first[taker]))
    assert second["IND"] == 0 and second[taker] == 0
    assert second.sum() <= first[taker]
    assert len(st.declined) == 2


def test_unknown_names(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    from dosewise.errors import InputError

    sizes, dap = demo_tiers
    st = solve_optimal(demo_world, demo_scenario.policy, tier_sizes=sizes, deaths_averted_per_dose=dap)
    with pytest.raises(InputError, match="participant"):
        reoptimize_after_decline(st, "XXX", "SII-AZ-2021H1")
    with pytest.raises(InputError, match="lot"):
        reoptimize_after_decline(st, "IND", "nope")
