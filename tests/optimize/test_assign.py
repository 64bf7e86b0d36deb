"""Rounding to shipping units never breaks a lot, a capacity, a tier or a share cap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from dosewise.optimize import ProblemData, build_lp, round_solution, solve_lp
from optimize.test_build import problems
from optimize.test_solve import assert_feasible


@settings(max_examples=40, deadline=None)
@given(problems())
def test_rounding_respects_every_limit(d: ProblemData) -> None:
    lp = build_lp(d)
    if lp.num_col == 0:
        return
    sol = solve_lp(lp)
    r = round_solution(lp, sol.x)
    # whole shipping units per (participant, lot), within each lot's budget
    assert (r.doses % d.unit[None, :] == 0).all()
    assert (r.doses.sum(axis=0) <= d.budget).all()
    # the rounded schedule adds up to the rounded doses and is feasible for the LP
    per = np.zeros((d.n, d.n_lots))
    np.add.at(per, (lp.variables.part, lp.variables.lot), r.x)
    np.testing.assert_allclose(per, r.doses, atol=1e-6)
    assert_feasible(d, lp.variables, r.x)
    # so it cannot beat the LP optimum, and it loses at most what rounding down everything loses
    assert r.lost_to_rounding >= -1e-9
    lp_per = np.zeros((d.n, d.n_lots))
    np.add.at(lp_per, (lp.variables.part, lp.variables.lot), sol.x)
    units = np.floor(lp_per / d.unit[None, :] + 1e-6)
    assert (r.doses >= units * d.unit[None, :]).all()
    assert (r.doses <= (units + 1) * d.unit[None, :]).all()


def test_rounding_on_tiny(tiny: ProblemData) -> None:
    lp = build_lp(tiny)
    sol = solve_lp(lp)
    r = round_solution(lp, sol.x)
    # A 600 and B 300 doses of L1 are already multiples of 100; C's 120 of L2 of 10
    np.testing.assert_array_equal(r.doses, [[600, 0], [300, 0], [0, 120]])
    assert r.lost_to_rounding == pytest.approx(0.0, abs=1e-12)
    assert r.objective_lp == pytest.approx(sol.objective)


def test_rounding_down_under_capacity() -> None:
    """B can absorb 150 a week in weeks 0-1 → 300; with a unit of 200 it gets 200, never 400."""
    from optimize.conftest import tiny_problem

    d = tiny_problem(unit=np.array([200, 10]))
    lp = build_lp(d)
    r = round_solution(lp, solve_lp(lp).x)
    assert r.doses[1, 0] == 200
    assert r.doses[0, 0] == 600
    assert r.lost_to_rounding > 0
