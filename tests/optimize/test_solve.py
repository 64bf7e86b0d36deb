"""Solving: known optima, agreement with scipy's linprog on a dense loop-built model, constraints."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from dosewise.errors import AllocationError
from dosewise.optimize import ProblemData, build_lp, solve_lp
from optimize.conftest import tiny_problem
from optimize.test_build import problems


def dense_full(d: ProblemData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Over every (i, l, w, t), by loops: cost, bounds, A_ub x ≤ b_ub, and floors as −A x ≤ −floor.

    Columns the rules forbid get upper bound 0; participants with no weekly capacity keep every
    week (so agreement also checks that dropping their later weeks loses nothing)."""
    cols = list(itertools.product(range(d.n), range(d.n_lots), range(d.weeks), range(d.tiers)))
    c = np.zeros(len(cols))
    ub = np.zeros(len(cols))
    rows: list[np.ndarray] = []
    rhs: list[float] = []
    for j, (i, lot, w, t) in enumerate(cols):
        c[j] = d.value[i, t] * d.product_factor[lot] * d.discount[w]
        ok = d.usable[i, lot] and max(d.first_week[i, lot], 0) <= w <= d.last_week[i, lot]
        ub[j] = np.inf if ok else 0.0
    for lot in range(d.n_lots):
        rows.append(np.array([1.0 if col[1] == lot else 0.0 for col in cols]))
        rhs.append(float(d.budget[lot]))
    for i, t in itertools.product(range(d.n), range(d.tiers)):
        rows.append(np.array([1.0 / d.course[col[1]] if col[0] == i and col[3] == t else 0.0 for col in cols]))
        rhs.append(float(d.tier_people[i, t]))
    for i, w in itertools.product(range(d.n), range(d.weeks)):
        if np.isfinite(d.capacity[i]):
            rows.append(np.array([1.0 if col[0] == i and col[2] == w else 0.0 for col in cols]))
            rhs.append(float(d.capacity[i]))
    for i in range(d.n):
        mine = np.array([1.0 if col[0] == i else 0.0 for col in cols])
        if np.isfinite(d.share_cap[i]):
            rows.append(mine)
            rhs.append(float(d.share_cap[i]))
        if d.floor[i] > 0:
            rows.append(-mine)
            rhs.append(-float(d.floor[i]))
    return c, np.zeros(len(cols)), ub, np.array(rows), np.array(rhs), np.array(cols)


def scipy_optimum(d: ProblemData) -> float:
    c, lb, ub, a, b, _ = dense_full(d)
    res = linprog(-c, A_ub=a, b_ub=b, bounds=list(zip(lb, ub, strict=True)), method="highs")
    assert res.status == 0
    return float(-res.fun)


def test_tiny_known_optimum(tiny: ProblemData) -> None:
    """By hand: A (no capacity) takes L1 in week 0 for its 100 + 200 people (600 doses, worth
    (3·100·2 + 1·200·2)e-4 = 0.1) and L2 in week 1 only if L1 is gone. B takes L1 at 150 a week
    in weeks 0-1 (tier 0 first: 150 people × 2 doses = 300 doses, 2e-4 each), so L1's 1000 doses
    go 600 to A and 300 to B, the rest (100) to B can't fit (capacity), and are left; C takes L2 in
    week 2 (120 doses, 50 to tier 0 at 4e-4·0.8·0.8, 70 to tier 1), and A takes the rest of L2 only
    if it has people left (it does not)."""
    sol = solve_lp(build_lp(tiny))
    disc = tiny.discount
    a = (3e-4 * 200 + 1e-4 * 400) * disc[0]
    b = 2e-4 * 150 * disc[0] + 2e-4 * 150 * disc[1]
    c = (4e-4 * 50 + 0.5e-4 * 70) * 0.8 * disc[2]
    assert sol.status == "Optimal"
    assert sol.objective == pytest.approx(a + b + c, rel=1e-9)
    assert sol.objective == pytest.approx(scipy_optimum(tiny), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(problems())
def test_random_optimum_matches_scipy(d: ProblemData) -> None:
    lp = build_lp(d)
    if lp.num_col == 0:
        return
    sol = solve_lp(lp)
    assert sol.objective == pytest.approx(scipy_optimum(d), rel=1e-7, abs=1e-9)
    assert_feasible(d, lp.variables, sol.x)


def assert_feasible(d: ProblemData, v: object, x: np.ndarray, tol: float = 1e-6) -> None:
    """Lot supply, tier sizes, capacity, share cap and floor; columns only where rules allow."""
    part, lot, week, tier = v.part, v.lot, v.week, v.tier  # type: ignore[attr-defined]
    assert (x >= -tol).all()
    assert (np.bincount(lot, x, d.n_lots) <= d.budget + tol * (1 + d.budget)).all()
    people = np.zeros((d.n, d.tiers))
    np.add.at(people, (part, tier), x / d.course[lot])
    assert (people <= d.tier_people + tol * (1 + d.tier_people)).all()
    load = np.zeros((d.n, d.weeks))
    np.add.at(load, (part, week), x)
    assert (load <= d.capacity[:, None] * (1 + tol) + tol).all()
    total = np.bincount(part, x, d.n)
    assert (total <= d.share_cap * (1 + tol) + tol).all()
    assert (total >= d.floor * (1 - tol) - tol).all()
    assert d.usable[part, lot].all()
    assert (week >= np.maximum(d.first_week[part, lot], 0)).all()
    assert (week <= d.last_week[part, lot]).all()


def test_equity_floor_moves_doses(tiny: ProblemData) -> None:
    base = solve_lp(build_lp(tiny))
    floored = tiny_problem(floor=np.array([0.0, 0.0, 200.0]))  # C may take 120 a week, weeks 2 only → 120 max
    with pytest.raises(AllocationError, match=r"infeasible.*(participant|capacity)"):
        solve_lp(build_lp(floored))
    ok = tiny_problem(floor=np.array([0.0, 0.0, 100.0]), share_cap=np.array([500.0, np.inf, np.inf]))
    sol = solve_lp(build_lp(ok))
    assert sol.objective <= base.objective + 1e-12
    assert sol.objective == pytest.approx(scipy_optimum(ok), rel=1e-9)


def test_infeasible_names_rows() -> None:
    d = tiny_problem(floor=np.array([0.0, 5000.0, 0.0]))
    with pytest.raises(AllocationError) as err:
        solve_lp(build_lp(d))
    msg = str(err.value)
    assert "binding constraint families" in msg
    assert "participant[B]" in msg


def test_mip_counts_shipping_units(tiny: ProblemData) -> None:
    lp = build_lp(tiny, mip=True)
    sol = solve_lp(lp)
    units = sol.x / tiny.unit[lp.variables.lot]
    np.testing.assert_allclose(units, np.round(units), atol=1e-6)
    assert_feasible(tiny, lp.variables, sol.x)
    # the same MIP dense, by scipy's milp over unit counts
    c, lb, ub, a, b, cols = dense_full(tiny)
    unit = tiny.unit[cols[:, 1]].astype(float)
    ub_units = np.where(ub > 0, 1e6, 0.0)
    res = milp(
        -c * unit,
        constraints=LinearConstraint(a * unit, -np.inf, b),
        bounds=Bounds(lb, ub_units),
        integrality=np.ones(len(c)),
    )
    assert res.status == 0
    assert sol.objective == pytest.approx(-res.fun, rel=1e-6)
    assert sol.objective <= solve_lp(build_lp(tiny)).objective + 1e-12
