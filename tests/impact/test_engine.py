"""Engine invariants: conservation, no negative compartments, dose accounting, agreement with solve_ivp."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.impact.conftest import campaign

from dosewise.impact import ImpactParams, prepare, product_vaccines, simulate
from dosewise.impact.engine import NegativeCompartmentError, spectral_radius
from dosewise.impact.reference import solve_reference
from dosewise.world import World


def test_people_conserved_every_day(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    traj = simulate(small_setup, campaign(small_world, small_setup), keep_states=True)
    assert traj.states is not None
    living = traj.states[:, : traj.layout.living].sum(axis=1)
    np.testing.assert_allclose(living, np.broadcast_to(small_setup.pop, living.shape), rtol=1e-6)
    assert traj.vaccinated.sum() > 0


def test_zero_doses_match_no_vaccine_run(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    base = simulate(small_setup)
    zero = simulate(small_setup, campaign(small_world, small_setup).scaled(0.0))
    np.testing.assert_array_equal(zero.deaths, base.deaths)
    np.testing.assert_array_equal(zero.infections, base.infections)
    assert zero.doses_used.sum() == 0


def test_beta_gives_r0_as_dominant_eigenvalue_of_ngm(small_setup) -> None:  # type: ignore[no-untyped-def]
    s = small_setup
    n_ = s.pop
    ngm = s.beta[0][:, None, None] * s.params.infectious_days * n_[:, :, None] * s.contacts / n_[:, None, :]
    np.testing.assert_allclose(spectral_radius(ngm), 2.5, rtol=1e-9)


def test_more_deaths_without_vaccine_and_epidemic_takes_off(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    base = simulate(small_setup)
    vac = simulate(small_setup, campaign(small_world, small_setup))
    attack = base.infections[-1].sum(axis=1) / small_setup.pop.sum(axis=1)
    assert (attack > 0.5).all()
    assert (vac.deaths[-1].sum(axis=1) < base.deaths[-1].sum(axis=1)).all()


def test_agrees_with_solve_ivp(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    vac = campaign(small_world, small_setup)
    traj = simulate(small_setup, vac, keep_states=True)
    assert traj.states is not None
    for p in (0, 2, 4):  # NGA (prem2021), ITA, HTI (prem2017)
        ref = solve_reference(small_setup, p, vac, rtol=1e-8)
        eng = traj.states[:, :, p, :]
        # 0.1% of each compartment's peak in each band, with a floor of 0.01% of the band's people so that
        # compartments that never hold more than a handful of people (75+ infectious after the 75+ are
        # vaccinated) are judged on people, not on their own tiny scale.
        scale = np.maximum(np.abs(ref).max(axis=0, keepdims=True), 1e-4 * small_setup.pop[p][None, None, :])
        assert np.abs(eng - ref).max() / small_setup.pop[p].max() < 1e-3
        live = slice(0, traj.layout.living)
        assert (np.abs(eng[:, live] - ref[:, live]) / scale[:, live]).max() < 1e-3
        np.testing.assert_allclose(traj.deaths[-1, p].sum(), ref[-1, traj.layout.dw] @ small_setup.ifr[p], rtol=1e-3)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    e1=st.tuples(st.floats(0, 0.95), st.floats(0, 1)),
    bump=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
)
def test_more_efficacy_averts_at_least_as_many_deaths(
    small_world: World, small_setup, e1: tuple[float, float], bump: tuple[float, float]  # type: ignore[no-untyped-def]
) -> None:
    e2 = (min(e1[0] + bump[0], 1.0), min(e1[1] + bump[1], 1.0))
    vac = campaign(small_world, small_setup)
    lo = simulate(small_setup, vac.with_efficacy(np.full(2, e1[0]), np.full(2, e1[1])))
    hi = simulate(small_setup, vac.with_efficacy(np.full(2, e2[0]), np.full(2, e2[1])))
    d_lo, d_hi = lo.deaths[-1].sum(axis=1), hi.deaths[-1].sum(axis=1)
    assert (d_hi <= d_lo * (1 + 1e-9) + 1e-6).all()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    share=st.floats(0.05, 3.0),
    days=st.lists(st.integers(0, 59), min_size=1, max_size=6, unique=True),
    r0=st.floats(1.2, 6.0),
    priority=st.sampled_from(["oldest-first", "pro-rata", ((3, 4), (15,))]),
)
def test_heavy_vaccination_never_negative_nor_beyond_eligible(
    small_world: World, share: float, days: list[int], r0: float, priority: object
) -> None:
    params = ImpactParams(days=60, r0=r0, priority=priority)  # type: ignore[arg-type]
    setup = prepare(small_world, params)
    doses = np.zeros((setup.n, 2, 60))
    for d in days:
        doses[:, d % 2, d] = share * small_world.population
    vac = product_vaccines(small_world, ["AZD1222", "BNT162b2"], doses, params)
    traj = simulate(setup, vac, keep_states=True)
    assert traj.states is not None
    assert traj.states[:, : traj.layout.living].min() >= -1e-9 * setup.pop.max()
    vaccinated = traj.vaccinated.sum(axis=0)
    assert (vaccinated <= setup.pop * (1 + 1e-12)).all()
    np.testing.assert_allclose(traj.doses_used + traj.doses_unused, doses.sum(axis=2), rtol=1e-9)
    if priority == ((3, 4), (15,)):
        assert vaccinated[:, [b for b in range(16) if b not in (3, 4, 15)]].sum() == 0


def test_unused_doses_reported_when_nobody_is_left(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    doses = np.zeros((small_setup.n, 1, small_setup.days))
    doses[:, 0, 0] = 3.0 * small_world.population  # AZD1222: 2 doses per course → 1.5 courses per person
    vac = product_vaccines(small_world, ["AZD1222"], doses, small_setup.params)
    traj = simulate(small_setup, vac)
    eligible = small_setup.pop.sum(axis=1) * (1 - small_setup.params.seed_fraction)
    np.testing.assert_allclose(traj.doses_used[:, 0], 2 * eligible, rtol=1e-9)
    np.testing.assert_allclose(traj.doses_unused[:, 0], doses[:, 0, 0] - 2 * eligible, rtol=1e-9)


def test_negative_state_raises(small_setup) -> None:  # type: ignore[no-untyped-def]
    bad = dataclasses.replace(small_setup, pop=small_setup.pop * -1.0)
    with pytest.raises(NegativeCompartmentError):
        simulate(bad)


def test_sputnik_without_severe_efficacy_is_a_clear_error(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    from dosewise.errors import InputError

    sputnik = [p for p in small_world.products.index if "Gam" in p or "Sputnik" in p]
    assert sputnik, "the catalogue should carry Sputnik V"
    doses = np.zeros((small_setup.n, 1, small_setup.days))
    with pytest.raises(InputError, match="efficacy_severe"):
        product_vaccines(small_world, sputnik[:1], doses, small_setup.params)
    params = small_setup.params.model_copy(update={"efficacy": {sputnik[0]: (0.916, 0.9)}})
    assert product_vaccines(small_world, sputnik[:1], doses, params).e_sev[0] == 0.9


def test_epidemic_settings_against_solve_ivp(small_world: World) -> None:
    """Natural waning, prior immunity by age, an Rt step and a cap on uptake, in both solvers."""
    params = ImpactParams(days=120, natural_immunity_days=60.0, waning_days=90.0, rt={40: 1.4},
                          prior_immunity_by_age=tuple(0.01 * b for b in range(16)), max_uptake=0.5)
    setup = prepare(small_world, params)
    vac = campaign(small_world, setup, share=0.02)
    traj = simulate(setup, vac, keep_states=True)
    assert traj.states is not None
    living = traj.states[:, : traj.layout.living].sum(axis=1)
    np.testing.assert_allclose(living, np.broadcast_to(setup.pop, living.shape), rtol=1e-6)
    # nobody beyond half of any band is vaccinated, though doses were offered for far more
    assert (traj.vaccinated.sum(axis=0) <= 0.5 * setup.pop * (1 + 1e-9)).all()
    assert traj.doses_unused.sum() > 0
    for p in (1, 3):
        ref = solve_reference(setup, p, vac, rtol=1e-8)
        scale = np.maximum(np.abs(ref).max(axis=0, keepdims=True), 1e-4 * setup.pop[p][None, None, :])
        assert (np.abs(traj.states[:, :, p, :] - ref) / scale).max() < 2e-3


def test_health_system_doubles_ifr_below_high_income(small_world: World) -> None:
    plain = prepare(small_world, ImpactParams(days=60))
    adjusted = prepare(small_world, ImpactParams(days=60, health_system="levin2022"))
    income = small_world.participants["income_level"].to_numpy()
    ratio = adjusted.ifr / plain.ifr
    np.testing.assert_allclose(ratio[income == "High"], 1.0)
    np.testing.assert_allclose(ratio[income != "High"], 2.0)
    base, adj = simulate(plain), simulate(adjusted)
    np.testing.assert_allclose(adj.infections, base.infections)  # mortality only, same epidemic


def test_natural_waning_brings_more_infections(small_world: World) -> None:
    lasting = simulate(prepare(small_world, ImpactParams(days=300)))
    waning = simulate(prepare(small_world, ImpactParams(days=300, natural_immunity_days=90.0)))
    assert (waning.infections[-1].sum(axis=1) > lasting.infections[-1].sum(axis=1)).all()


def test_stacked_scenarios_equal_single_runs(small_world: World, small_setup) -> None:  # type: ignore[no-untyped-def]
    """Participants stacked three times along the participant axis, in blocks of 4, give the same
    trajectories as one run of the original participants."""
    vac = campaign(small_world, small_setup)
    one = simulate(small_setup, vac)
    idx = np.tile(np.arange(small_setup.n), 3)
    stacked = small_setup.subset(idx)
    many = simulate(stacked, dataclasses.replace(vac, doses=vac.doses[idx]), block=4)
    np.testing.assert_allclose(many.deaths[:, : small_setup.n], one.deaths, rtol=1e-12)
    np.testing.assert_allclose(many.deaths[:, 2 * small_setup.n :], one.deaths, rtol=1e-12)


def test_stop_after_the_epidemic_and_unused_products_change_nothing(small_world: World) -> None:
    """Over 365 days the epidemic ends long before the horizon: stopping the blocks then (and giving
    products without doses no compartments) gives the deaths of the full integration with every
    product's compartments (``keep_states`` turns both off), and doses given after the stop are
    still counted."""
    setup = prepare(small_world, ImpactParams(days=365))
    doses = np.zeros((setup.n, 3, setup.days))
    doses[:, 0, 5:40] = 0.004 * small_world.population[:, None]
    doses[:, 2, 300:320] = 0.001 * small_world.population[:, None]  # after the epidemic
    vac = product_vaccines(small_world, ["AZD1222", "BNT162b2", "Covishield"], doses, setup.params)
    fast = simulate(setup, vac)
    full = simulate(setup, vac, keep_states=True)
    assert full.states is not None
    np.testing.assert_allclose(fast.deaths[-1], full.deaths[-1], rtol=1e-6)
    np.testing.assert_allclose(fast.infections[-1], full.infections[-1], rtol=1e-6)
    np.testing.assert_allclose(fast.doses_used, full.doses_used, rtol=1e-9)
    np.testing.assert_allclose(fast.vaccinated.sum(axis=0), full.vaccinated.sum(axis=0), rtol=1e-9)
    assert fast.doses_used[:, 1].sum() == 0 and fast.doses_used[:, 2].sum() > 0
    # the epidemic really was over: its last 60 days add (almost) no infections
    inf = full.infections.sum(axis=2)
    assert ((inf[-1] - inf[-61]) < 1e-6 * setup.pop.sum(axis=1)).all()


def test_no_stop_while_immunity_wanes(small_world: World) -> None:
    """With waning natural immunity the susceptible grow again, so the engine never stops early:
    the last weeks still add infections."""
    setup = prepare(small_world, ImpactParams(days=365, natural_immunity_days=60.0))
    run = simulate(setup)
    inf = run.infections.sum(axis=2)
    assert (inf[-1] - inf[-30] > 0).all()


@pytest.fixture(scope="module")
def year_setup(small_world: World):  # type: ignore[no-untyped-def]
    """365 days: every participant's epidemic ends well before the horizon, each on its own day."""
    return prepare(small_world, ImpactParams(days=365))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_any_block_size_and_stacking_give_the_single_run_bit_for_bit(  # type: ignore[no-untyped-def]
    small_world: World, year_setup, block: int, seed: int
) -> None:
    """The six participants stacked three times in a random order and integrated in blocks of a
    random size give, bit for bit, every number of one run of the six: each participant stops
    integrating when its own epidemic is over, whoever shares its block."""
    vac = campaign(small_world, year_setup)
    one = simulate(year_setup, vac)
    idx = np.random.default_rng(seed).permutation(np.tile(np.arange(year_setup.n), 3))
    many = simulate(year_setup.subset(idx), dataclasses.replace(vac, doses=vac.doses[idx]), block=block)
    for name in ("deaths", "infections", "vaccinated"):
        assert np.array_equal(getattr(many, name), getattr(one, name)[:, idx]), name
    assert np.array_equal(many.doses_used, one.doses_used[idx])
    assert np.array_equal(many.doses_unused, one.doses_unused[idx])


def test_participants_stop_on_their_own_days(small_world: World, year_setup) -> None:  # type: ignore[no-untyped-def]
    """The stop is per participant: in one block, participants whose epidemics end at different
    times stop adding infections at different times (a block-wide stop would freeze them all on
    one day), and the last days add nothing anywhere."""
    run = simulate(year_setup, campaign(small_world, year_setup), block=year_setup.n)
    daily = np.diff(run.infections.sum(axis=2), axis=0)  # (days, n)
    last = daily.shape[0] - 1 - np.argmax(daily[::-1] != 0, axis=0)
    assert len(set(last.tolist())) > 1
    assert (last < year_setup.days - 30).all()
