"""HiGHS algorithm choice (simplex, interior point, PDLP) and week aggregation for very large instances."""

from __future__ import annotations

import numpy as np
import pytest

from dosewise.errors import InputError
from dosewise.optimize import AUTO_IPM_COLUMNS, ProblemData, build_lp, choose_solver, round_solution, solve_lp
from dosewise.optimize.problem import aggregate_weeks, linear_discount
from optimize.conftest import tiny_problem


def test_auto_picks_simplex_for_small_and_rejects_unknown(tiny: ProblemData) -> None:
    lp = build_lp(tiny)
    assert lp.num_col <= AUTO_IPM_COLUMNS
    assert choose_solver(lp) == "simplex"
    assert choose_solver(lp, "ipm") == "ipm"
    with pytest.raises(InputError, match="unknown solver"):
        choose_solver(lp, "cplex")


@pytest.mark.parametrize("solver", ["ipm", "pdlp"])
def test_other_algorithms_reach_the_simplex_optimum(tiny: ProblemData, solver: str) -> None:
    lp = build_lp(tiny)
    ref = solve_lp(lp, solver="simplex")
    other = solve_lp(lp, solver=solver)
    assert other.solver == solver
    assert other.objective == pytest.approx(ref.objective, rel=1e-4)
    # rounding copes with an interior (slightly fractional) point: lots and capacity still hold
    r = round_solution(lp, other.x)
    assert (r.doses.sum(axis=0) <= tiny.budget).all()


def _weekly(weeks: int = 6) -> ProblemData:
    return tiny_problem(
        first_week=np.array([[0, 1], [0, 1], [0, 2]]),
        last_week=np.array([[5, 4], [3, 5], [5, 5]]),
        discount=linear_discount(weeks, 0.4),
        capacity=np.array([np.inf, 60.0, 40.0]),
    )


def test_aggregate_weeks_is_a_feasible_restriction() -> None:
    weekly = _weekly()
    two = aggregate_weeks(weekly, 2)
    assert two.weeks == 3
    np.testing.assert_allclose(two.capacity[1:], 2 * weekly.capacity[1:])
    np.testing.assert_allclose(two.discount, weekly.discount.reshape(3, 2).mean(axis=1))
    # a period is usable only if all its weeks lie in the lot's window
    np.testing.assert_array_equal(two.first_week, [[0, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(two.last_week, [[2, 1], [1, 2], [2, 2]])
    full = solve_lp(build_lp(weekly))
    lp2 = build_lp(two)
    agg = solve_lp(lp2)
    assert agg.objective <= full.objective + 1e-9
    # spreading each period evenly over its two weeks keeps the weekly capacity
    v = lp2.variables
    load = np.zeros((two.n, two.weeks))
    np.add.at(load, (v.part, v.week), agg.x)
    assert (load / 2 <= weekly.capacity[:, None] + 1e-6).all()
    assert aggregate_weeks(weekly, 1) is weekly
    with pytest.raises(InputError):
        aggregate_weeks(weekly, 0)
