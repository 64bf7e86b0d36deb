"""The optimum on the impact model's own value curves: concave envelopes, the LP's estimate
against the simulation, and no policy beating ``optimal`` in the simulation it optimises."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dosewise.compare import comparison_table, run_policies
from dosewise.epidemic import EpidemicSettings
from dosewise.optimize.model import concave_envelope, envelope_value
from dosewise.scenario import Scenario, load_demo, parse_scenario
from dosewise.world import build_world

TOLERANCE = 0.005
"""No policy may avert more than 0.5 % more deaths than ``optimal`` in simulation."""


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=9), min_size=1, max_size=5)
    .filter(lambda rows: len({len(r) for r in rows}) == 1)
)
def test_concave_envelope_is_concave_and_above_the_points(rows: list[list[float]]) -> None:
    y = np.array(rows)
    n, k = y.shape
    x = np.sort(np.random.default_rng(k).uniform(0, 100, (n, k)), axis=1)
    x[:, 0] = 0.0
    y[:, 0] = 0.0
    length, slope = concave_envelope(x, y)
    assert (length >= 0).all() and (slope >= 0).all()
    used = length > 1e-9
    for i in range(n):
        s = slope[i][used[i]]
        assert (np.diff(s) <= 1e-9 * max(1.0, float(s.max(initial=0)))).all()
    run_max = np.maximum.accumulate(y, axis=1)
    for j in range(k):
        env = envelope_value(length, slope, x[:, j])
        np.testing.assert_array_less(run_max[:, j] - 1e-6 * (1 + np.abs(run_max[:, j])), env + 1e-9)


def assert_optimal_best(frame, *, gap: float | None = None) -> None:  # type: ignore[no-untyped-def]
    best = float(frame.loc["optimal", "deaths_averted"])
    for name, value in frame["deaths_averted"].items():
        assert float(value) <= best * (1 + TOLERANCE), (name, float(value), best)
    if gap is not None:
        assert abs(float(frame.loc["optimal", "lp_gap_share"])) < gap


ALL_RULES = ["covax-pro-rata", "pro-rata-65+", "high-income-first", "low-income-first"]
FLOORS = ["optimal", "optimal-floor-50", "optimal-floor-100"]


@pytest.fixture(scope="module")
def demo_runs():  # type: ignore[no-untyped-def]
    sc = load_demo()
    world = build_world(sc)
    return run_policies(world, ALL_RULES + FLOORS, policy_params=sc.policy)


def test_demo_optimal_is_best_and_its_estimate_within_2_percent(demo_runs) -> None:  # type: ignore[no-untyped-def]
    frame = comparison_table(demo_runs)
    assert_optimal_best(frame, gap=0.02)
    notes = demo_runs.allocations["optimal"].notes
    hist = notes["relinearisation"]
    assert notes["iterations"] == len(hist) >= 2
    # re-linearising never made the kept answer worse, and it is the best simulated LP solution
    assert notes["simulated_deaths_averted"] == pytest.approx(hist["simulated"].max(), rel=1e-9) or (
        notes["chosen"] != "lp")
    assert notes["simulated_deaths_averted"] == pytest.approx(frame.loc["optimal", "deaths_averted"], rel=1e-9)


def test_demo_income_table(demo_runs) -> None:  # type: ignore[no-untyped-def]
    from dosewise.compare import income_table

    table = income_table(demo_runs)
    assert set(table.index) <= {"High", "Upper middle", "Lower middle", "Low"}
    assert (table["deaths_no_vaccine_per_million"] > 0).all()
    total = sum(float(r.by_participant["deaths_no_vaccine"].sum()) for r in list(demo_runs.results.values())[:1])
    assert table["deaths_no_vaccine"].sum() == pytest.approx(total)


def readme_scenario() -> Scenario:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "East Africa" in b)
    return parse_scenario(yaml.safe_load(block), file="README.md")


def test_readme_example_optimal_is_best(shared_data: Path) -> None:
    from dosewise.policies.need_weighted import need_from_files

    sc = readme_scenario()
    world = build_world(sc)
    need = need_from_files(world, str(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"),
                           dt.date(2021, 3, 1))
    runs = run_policies(world, ["covax-pro-rata", "covax-need-weighted", *ALL_RULES[1:], *FLOORS],
                        policy_params=sc.policy, policy_options={"covax-need-weighted": {"need": need}},
                        like={"TUV": "KIR"})
    assert_optimal_best(comparison_table(runs))


CODES = ["NGA", "JPN", "BRA", "ETH", "ITA", "IND", "HTI", "VNM", "USA", "BOL"]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codes=st.lists(st.sampled_from(CODES), min_size=2, max_size=4, unique=True),
    doses=st.integers(2, 40).map(lambda k: k * 1_000_000),
    second=st.booleans(),
    r0=st.floats(1.3, 3.0),
    prior=st.floats(0.0, 0.4),
    days=st.integers(120, 240),
)
def test_random_small_scenarios_optimal_is_best(
    codes: list[str], doses: int, second: bool, r0: float, prior: float, days: int
) -> None:
    lots = [{"id": "A", "product": "AZD1222", "doses": doses, "available": dt.date(2021, 3, 1),
             "expiry": dt.date(2021, 10, 1)}]
    if second:
        lots.append({"id": "B", "product": "BNT162b2", "doses": doses // 2, "available": dt.date(2021, 4, 1),
                     "expiry": dt.date(2021, 8, 1)})
    sc = Scenario.model_validate({
        "participants": {"include": codes, "defaults": {"capacity_per_week": 2_000_000}},
        "lots": lots,
        "epidemic": EpidemicSettings(r0=r0, prior_immunity=prior, days=days).model_dump(by_alias=True),
    })
    world = build_world(sc)
    runs = run_policies(world, [*ALL_RULES, "optimal", "optimal-floor-50"], policy_params=sc.policy)
    assert_optimal_best(comparison_table(runs))


def test_optimal_follows_the_priority_order_it_is_judged_by() -> None:
    """With pro-rata vaccination within countries the value curves change, and the LP's estimate
    still matches the simulation (the optimiser used the same priority order)."""
    sc = Scenario.model_validate({
        "participants": {"include": ["NGA", "JPN", "ITA", "HTI"], "defaults": {"capacity_per_week": 1_000_000}},
        "lots": [{"id": "A", "product": "AZD1222", "doses": 20_000_000, "available": dt.date(2021, 3, 1),
                  "expiry": dt.date(2021, 10, 1)}],
        "epidemic": {"days": 150, "priority": "pro-rata"},
    })
    runs = run_policies(build_world(sc), ["covax-pro-rata", "optimal"], policy_params=sc.policy)
    frame = comparison_table(runs)
    assert_optimal_best(frame, gap=0.05)
    assert runs.results["optimal"].setup.params.priority == "pro-rata"


def test_world_scenario_optimal_beats_every_rule() -> None:
    """The shipped world scenario (Rt schedule, prior immunity, 187 economies): optimal is best
    among pro rata (oldest first), pro rata to people 65+, high-income first and low-income first."""
    from importlib import resources

    from dosewise.compare import income_table
    from dosewise.scenario import parse_scenario_text

    text = (resources.files("dosewise") / "data" / "world_rt.yaml").read_text(encoding="utf-8")
    sc = parse_scenario_text(text, file="world_rt.yaml")
    runs = run_policies(build_world(sc), [*ALL_RULES, "optimal"], policy_params=sc.policy)
    frame = comparison_table(runs)
    assert_optimal_best(frame)
    table = income_table(runs)
    assert list(table.index) == ["High", "Upper middle", "Lower middle", "Low"]
    # high-income first averts nothing outside high income; low-income first nothing outside low income
    assert table.loc[["Upper middle", "Lower middle", "Low"], "high-income-first"].abs().max() < 1.0
    assert table.loc[["High", "Upper middle", "Lower middle"], "low-income-first"].abs().max() < 1.0


def small_model_world():  # type: ignore[no-untyped-def]
    sc = Scenario.model_validate({
        "participants": {"include": ["NGA", "JPN", "ITA", "HTI"], "defaults": {"capacity_per_week": 1_000_000}},
        "lots": [{"id": "A", "product": "AZD1222", "doses": 20_000_000, "available": dt.date(2021, 3, 1),
                  "expiry": dt.date(2021, 10, 1)},
                 {"id": "B", "product": "BNT162b2", "doses": 8_000_000, "available": dt.date(2021, 5, 1),
                  "expiry": dt.date(2021, 9, 1)}],
        "epidemic": {"days": 200, "r0": 1.8},
    })
    return build_world(sc)


def test_local_model_estimate_is_exact_at_its_points() -> None:
    """The local values per participant × lot reproduce the simulation at the centre and at every
    simulated step (where the slopes were not made concave), and their LP keeps each coordinate
    within the trust region and each lot within its budget."""
    from dosewise.optimize import model as m
    from dosewise.optimize.policy import model_context
    from dosewise.optimize.solve import solve_lp
    from dosewise.policies import allocate_pro_rata
    from dosewise.scenario import policy_params

    world = small_model_world()
    ctx = model_context(world)
    ctx.worth = m.valuable(ctx)
    start = m._world_doses(ctx, allocate_pro_rata(world, policy_params(None, name="covax-pro-rata")))
    n = ctx.n
    value = m.simulate_rows(ctx, np.arange(n), start)
    down, up, rows, row_doses = m.local_rows(ctx, start, 0.5, ctx.worth, m.pro_rata_scale(ctx))
    averted = m.simulate_rows(ctx, rows, row_doses)
    lm = m.local_model(start, value, down, up, averted, ctx.worth)
    assert lm.estimate(start) == pytest.approx(float(value.sum()))
    assert (lm.s_up <= lm.s_down + 1e-12).all() and (lm.s_up >= 0).all()
    for r, (i, d) in enumerate(zip(rows, row_doses, strict=True)):
        moved = np.flatnonzero(d != start[i])
        assert moved.size == 1
        if lm.s_up[i, moved[0]] == lm.s_down[i, moved[0]]:
            continue  # made concave: a chord, the points may lie below it
        expect = float(value.sum() - value[i] + averted[r])
        assert lm.estimate(np.where(np.arange(n)[:, None] == i, d[None, :], start)) == pytest.approx(expect, rel=1e-9)
    lp = m.local_problem(ctx, lm, floor=None, share_cap=np.full(n, np.inf), buffer=0.0)
    sol = solve_lp(lp)
    got = np.zeros_like(start)
    np.add.at(got, (lp.variables.part, lp.variables.lot), sol.x)
    assert (got >= start - down - 1e-3).all() and (got <= start + up + 1e-3).all()
    assert (got.sum(axis=0) <= world.lots["doses"].to_numpy() + 1e-3).all()


def test_local_steps_improve_on_their_start_and_the_estimate_converges() -> None:
    """From pro rata, every kept step averts more deaths in simulation than the one before, the
    answer is the best of them, and the last step's estimate is closer to its simulation than
    the first's."""
    from dosewise.optimize.policy import solve_optimal
    from dosewise.policies import allocate_pro_rata
    from dosewise.scenario import policy_params

    world = small_model_world()
    pr = allocate_pro_rata(world, policy_params(None, name="covax-pro-rata"))
    state = solve_optimal(world, policy_params(None, name="optimal"), candidates={"covax-pro-rata": pr})
    notes = state.allocation.notes
    hist = notes["relinearisation"]
    assert notes["start"] == "covax-pro-rata" and len(hist) >= 1
    from dosewise.optimize.model import simulate_allocation
    from dosewise.optimize.policy import model_context

    ctx = model_context(world)
    assert notes["simulated_deaths_averted"] >= simulate_allocation(ctx, pr) * (1 - 1e-9)
    assert notes["simulated_deaths_averted"] == pytest.approx(simulate_allocation(ctx, state.allocation), rel=1e-9)
    if notes["chosen"] == "lp":
        assert abs(notes["lp_gap_share"]) <= abs(hist["gap_share"].iloc[0]) + 1e-3


def test_rows_split_over_worker_processes_give_the_same_deaths(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stacked run of the closed loop split over two forked worker processes gives, bit for bit,
    the deaths averted of one run in this process; the workers are reused by the next run and
    stopped by ``close_pool``; off the main thread the same context runs in this process."""
    import threading

    from dosewise.optimize import model as m
    from dosewise.optimize.policy import model_context
    from dosewise.policies import allocate_pro_rata
    from dosewise.scenario import policy_params

    world = small_model_world()
    start = m._world_doses(model_context(world), allocate_pro_rata(world, policy_params(None, name="covax-pro-rata")))
    rng = np.random.default_rng(7)
    rows = np.tile(np.arange(world.n), 120)
    doses = start[rows] * rng.uniform(0.0, 2.0, (rows.size, start.shape[1]))
    serial = model_context(world)
    serial.workers = 1
    parallel = model_context(world)
    parallel.workers = 2
    assert len(m._split(parallel, np.arange(rows.size))) > 1
    one = m.simulate_rows(serial, rows, doses)
    two = m.simulate_rows(parallel, rows, doses)
    assert serial.pool is None and parallel.pool is not None
    assert np.array_equal(one, two)
    pool = parallel.pool
    again = m.simulate_rows(parallel, rows[::-1], doses[::-1])
    assert parallel.pool is pool and np.array_equal(again, one[::-1])
    m.close_pool(parallel)
    assert parallel.pool is None
    threaded = model_context(world)
    threaded.workers = 2
    got: list[np.ndarray] = []
    t = threading.Thread(target=lambda: got.append(m.simulate_rows(threaded, rows, doses)))
    t.start()
    t.join()
    assert threaded.pool is None and np.array_equal(got[0], one)
    # worker threads instead of processes: the same numbers
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("DOSEWISE_WORKER_KIND", "threads")
    in_threads = model_context(world)
    in_threads.workers = 2
    assert np.array_equal(m.simulate_rows(in_threads, rows, doses), one)
    assert isinstance(in_threads.pool, ThreadPoolExecutor)
    m.close_pool(in_threads)


def _rows_in_a_sweep_worker(rows: np.ndarray, doses: np.ndarray) -> tuple[np.ndarray, bool]:
    from dosewise.optimize import model as m
    from dosewise.optimize.policy import model_context

    ctx = model_context(small_model_world())  # as a sweep task would: no workers asked
    return m.simulate_rows(ctx, rows, doses), ctx.pool is None


def test_inside_a_worker_process_the_closed_loop_starts_no_processes() -> None:
    """A sweep runs scenarios in worker processes: there the optimiser's stacked runs stay in the
    worker (no nested pool) and give the numbers of a run in the main process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from dosewise.optimize import model as m
    from dosewise.optimize.policy import model_context
    from dosewise.policies import allocate_pro_rata
    from dosewise.scenario import policy_params

    world = small_model_world()
    ctx = model_context(world)
    start = m._world_doses(ctx, allocate_pro_rata(world, policy_params(None, name="covax-pro-rata")))
    rows = np.tile(np.arange(world.n), 60)
    doses = start[rows] * np.random.default_rng(3).uniform(0.0, 2.0, (rows.size, start.shape[1]))
    here = m.simulate_rows(ctx, rows, doses)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        there, no_pool = pool.submit(_rows_in_a_sweep_worker, rows, doses).result(timeout=120)
    assert no_pool
    assert np.array_equal(there, here)
    m.close_pool(ctx)
