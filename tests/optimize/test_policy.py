"""The ``optimal`` policy on the AMC92 demo world (UN WPP 2024 ages, the Feb 2021 COVAX lots)."""

from __future__ import annotations

import numpy as np
import pytest

from dosewise.errors import AllocationError
from dosewise.optimize import inequality, solve_optimal
from dosewise.policies import allocate_pro_rata
from dosewise.registry import POLICIES
from dosewise.scenario import PolicyParams, Scenario, policy_params
from dosewise.world import World


def params(sc: Scenario, **options: object) -> PolicyParams:
    return policy_params(sc.policy, name="optimal", **options)


def test_registered() -> None:
    assert "optimal" in POLICIES


def test_floor_zero_beats_floor_one(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    sizes, dap = demo_tiers
    free = solve_optimal(demo_world, params(demo_scenario), tier_sizes=sizes, deaths_averted_per_dose=dap)
    fair = solve_optimal(
        demo_world, params(demo_scenario, equity_floor=1.0), tier_sizes=sizes, deaths_averted_per_dose=dap
    )
    assert free.allocation.notes["objective_lp"] > fair.allocation.notes["objective_lp"]
    pro = allocate_pro_rata(demo_world, demo_scenario.policy)
    ent = pro.totals()
    got = fair.allocation.totals()
    unit = int(demo_world.products.loc[demo_world.lots["product"], "shipping_unit"].max())
    lots = demo_world.lots.shape[0]
    assert (got >= ent - unit * lots).all(), demo_world.codes[got < ent - unit * lots].tolist()
    # with a floor of 1 almost nobody falls below pro rata; with none, most do (the old go first)
    assert inequality(demo_world, fair.allocation, pro)["share_below_pro_rata"] <= 0.05
    assert inequality(demo_world, free.allocation, pro)["share_below_pro_rata"] > 0.3


def test_allocation_respects_lots_buffer_and_acceptance(
    demo_world: World, demo_scenario: Scenario, demo_tiers: tuple
) -> None:
    sizes, dap = demo_tiers
    st = solve_optimal(demo_world, params(demo_scenario), tier_sizes=sizes, deaths_averted_per_dose=dap)
    a = st.allocation
    supply = demo_world.lots["doses"].to_numpy()
    np.testing.assert_array_equal(a.buffer, np.floor(0.05 * supply + 0.5).astype(np.int64))
    assert (a.doses.sum(axis=0) + a.buffer <= supply).all()
    unit = demo_world.products.loc[demo_world.lots["product"], "shipping_unit"].to_numpy()
    assert (a.doses % unit[None, :] == 0).all()
    assert (a.doses[~demo_world.usable()] == 0).all()
    # nobody gets more courses than it has people
    course = demo_world.products.loc[demo_world.lots["product"], "doses_per_course"].to_numpy()
    people = (a.doses / course[None, :]).sum(axis=1)
    assert (people <= demo_world.population * (1 + 1e-9)).all()
    assert a.notes["lost_to_rounding"] >= -1e-6
    assert a.notes["objective_rounded"] == pytest.approx(a.notes["objective_lp"], rel=1e-3)


def test_declined_product_and_capacity(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    sizes, dap = demo_tiers
    parts = demo_world.participants.copy()
    nga = parts.index.get_loc("NGA")
    parts.loc["NGA", "capacity_per_week"] = 100_000.0
    parts.loc["IND", "min_shelf_life_days"] = 400  # no lot keeps a year and more on arrival
    accepts = demo_world.accepts.copy()
    az = demo_world.product_index("AZD1222")
    pak = parts.index.get_loc("PAK")
    accepts[pak, az] = False
    world = World(**{**demo_world.__dict__, "participants": parts, "accepts": accepts})
    st = solve_optimal(world, params(demo_scenario, weeks=30), tier_sizes=sizes, deaths_averted_per_dose=dap)
    a = st.allocation
    lot_az = int(np.flatnonzero(demo_world.lots["product"].to_numpy() == "AZD1222")[0])
    assert a.doses[pak, lot_az] == 0
    assert a.doses[parts.index.get_loc("IND")].sum() == 0
    sched = a.notes["schedule"]
    weekly = sched[sched["participant"] == "NGA"].groupby("week")["doses"].sum()
    assert (weekly <= 100_000 + 1e-6).all()
    assert a.doses[nga].sum() <= 100_000 * 30


def test_infeasible_floor_names_participant(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    sizes, dap = demo_tiers
    parts = demo_world.participants.copy()
    parts.loc["ETH", "capacity_per_week"] = 1_000.0
    world = demo_world.with_participants(parts)
    with pytest.raises(AllocationError, match=r"equity floor 100% .*ETH \(floor"):
        solve_optimal(world, params(demo_scenario, equity_floor=1.0), tier_sizes=sizes, deaths_averted_per_dose=dap)


def test_bad_option(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    from dosewise.errors import InputError

    sizes, dap = demo_tiers
    with pytest.raises(InputError, match="equity_floor"):
        solve_optimal(
            demo_world, params(demo_scenario, equity_floor="lots"), tier_sizes=sizes, deaths_averted_per_dose=dap
        )


def test_max_share(demo_world: World, demo_scenario: Scenario, demo_tiers: tuple) -> None:
    sizes, dap = demo_tiers
    st = solve_optimal(
        demo_world, params(demo_scenario, max_share=0.1), tier_sizes=sizes, deaths_averted_per_dose=dap
    )
    a = st.allocation
    budget = (demo_world.lots["doses"].to_numpy() - a.buffer).sum()
    assert a.totals().max() <= 0.1 * budget + 1e-6


def test_floor_variants_registered(demo_world: World, demo_scenario: Scenario) -> None:
    """``optimal-floor-100`` (for ``dosewise compare``) gives everyone its pro-rata entitlement, with
    tier values from the impact model itself; the LP's estimate stays near the simulated deaths averted."""
    from dosewise.optimize import closed_loop

    a = POLICIES["optimal-floor-100"](demo_world, policy_params(demo_scenario.policy, name="optimal"))
    assert a.notes["equity_floor"] == 1.0
    ent = allocate_pro_rata(demo_world, demo_scenario.policy).totals()
    assert (a.totals() >= ent - 2400 * len(demo_world.lots)).all()
    loop = closed_loop(demo_world, a)
    assert loop["simulated_deaths_averted"] > 0
    assert abs(loop["gap_share"]) < 0.25
