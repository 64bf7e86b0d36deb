"""The sparse build against a dense build written with plain loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.optimize import FAMILIES, ProblemData, build_lp, build_variables
from optimize.conftest import tiny_problem


def dense_columns(d: ProblemData) -> list[tuple[int, int, int, int]]:
    """Every (i, l, w, t) allowed by the rules, by loops: usable, within the week window, and the
    first week only when the participant has no weekly capacity (dominated columns dropped)."""
    out = []
    for i, lot, w, t in itertools.product(range(d.n), range(d.n_lots), range(d.weeks), range(d.tiers)):
        lo = max(int(d.first_week[i, lot]), 0)
        hi = min(int(d.last_week[i, lot]), d.weeks - 1)
        if not d.usable[i, lot] or not lo <= w <= hi:
            continue
        if np.isinf(d.capacity[i]) and w != lo:
            continue
        out.append((i, lot, w, t))
    return out


def dense_matrix(d: ProblemData, cols: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, list[str]]:
    """Rows by loops, in the documented family order, coefficients in doses (or people for tiers)."""
    rows: list[tuple[str, dict[tuple[int, int, int, int], float]]] = []
    for lot in range(d.n_lots):
        rows.append((f"lot{lot}", {c: 1.0 for c in cols if c[1] == lot}))
    for i in range(d.n):
        for t in range(d.tiers):
            rows.append((f"tier{i},{t}", {c: 1.0 / d.course[c[1]] for c in cols if c[0] == i and c[3] == t}))
    for i in range(d.n):
        if np.isfinite(d.capacity[i]):
            for w in range(d.weeks):
                rows.append((f"cap{i},{w}", {c: 1.0 for c in cols if c[0] == i and c[2] == w}))
    for i in range(d.n):
        if d.floor[i] > 0 or np.isfinite(d.share_cap[i]):
            rows.append((f"part{i}", {c: 1.0 for c in cols if c[0] == i}))
    a = np.zeros((len(rows), len(cols)))
    for r, (_, entries) in enumerate(rows):
        for j, c in enumerate(cols):
            a[r, j] = entries.get(c, 0.0)
    return a, [name for name, _ in rows]


def test_tiny_variables_match_loops(tiny: ProblemData) -> None:
    v = build_variables(tiny)
    got = list(zip(v.part.tolist(), v.lot.tolist(), v.week.tolist(), v.tier.tolist(), strict=True))
    expected = dense_columns(tiny)
    assert got == expected
    # A: 2 lots × 1 week (no capacity); B: L1 weeks 0-1; C: L2 week 2 only — × 2 tiers
    assert v.size == (2 + 2 + 1) * 2
    assert v.part.dtype == np.int32 and v.week.dtype == np.int32


def test_tiny_matrix_matches_loops(tiny: ProblemData) -> None:
    lp = build_lp(tiny)
    a, names = dense_matrix(tiny, dense_columns(tiny))
    assert lp.a_index.dtype == np.int32 and lp.a_start.dtype == np.int32
    np.testing.assert_allclose(lp.dense_matrix() * lp.row_scale / lp.col_scale, a)
    assert lp.num_row == len(names) == 2 + 3 * 2 + 2 * 3
    assert list(lp.families) == list(FAMILIES)
    assert lp.families["capacity"] == (8, 14)
    np.testing.assert_allclose(lp.row_upper[:2] * lp.row_scale, tiny.budget)
    np.testing.assert_allclose(lp.row_upper[2:8] * lp.row_scale, tiny.tier_people.ravel())
    np.testing.assert_allclose(lp.row_upper[8:14] * lp.row_scale, [150] * 3 + [120] * 3)
    # objective: value[i, t] × product factor × discount[w]
    v = lp.variables
    np.testing.assert_allclose(
        lp.value, tiny.value[v.part, v.tier] * tiny.product_factor[v.lot] * tiny.discount[v.week]
    )
    assert lp.row_label(9) == "capacity[B, week 1]"
    assert lp.col_label(0) == "x[A, L1, week 0, tier 0]"


def test_participant_rows_only_where_needed() -> None:
    d = tiny_problem(floor=np.array([0.0, 50.0, 0.0]), share_cap=np.array([np.inf, np.inf, 300.0]))
    lp = build_lp(d)
    a, names = dense_matrix(d, dense_columns(d))
    assert names[-2:] == ["part1", "part2"]
    np.testing.assert_allclose(lp.dense_matrix() * lp.row_scale / lp.col_scale, a)
    start = lp.families["participant"][0]
    np.testing.assert_allclose(lp.row_lower[start:] * lp.row_scale, [50.0, 0.0])
    np.testing.assert_allclose(lp.row_upper[start:] * lp.row_scale, [np.inf, 300.0])


@st.composite
def problems(draw: st.DrawFn) -> ProblemData:
    n = draw(st.integers(1, 4))
    L = draw(st.integers(1, 3))
    W = draw(st.integers(1, 4))
    T = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    first = rng.integers(-1, W + 1, size=(n, L))
    cap = np.where(rng.random(n) < 0.5, np.inf, rng.integers(50, 500, n).astype(float))
    return ProblemData(
        usable=rng.random((n, L)) < 0.7,
        first_week=first,
        last_week=first + rng.integers(-1, W + 1, size=(n, L)),
        value=rng.random((n, T)) * 1e-3,
        product_factor=rng.uniform(0.5, 1.0, L),
        discount=np.linspace(1.0, 0.5, W),
        budget=rng.integers(100, 2000, L),
        course=rng.integers(1, 3, L).astype(float),
        unit=rng.choice([1, 10, 100], L),
        capacity=cap,
        tier_people=rng.integers(0, 400, (n, T)).astype(float),
        floor=np.zeros(n),
        share_cap=np.where(rng.random(n) < 0.3, 800.0, np.inf),
    )


@settings(max_examples=40, deadline=None)
@given(problems())
def test_random_builds_match_loops(d: ProblemData) -> None:
    lp = build_lp(d)
    cols = dense_columns(d)
    v = lp.variables
    assert list(zip(v.part.tolist(), v.lot.tolist(), v.week.tolist(), v.tier.tolist(), strict=True)) == cols
    a, _ = dense_matrix(d, cols)
    if cols:
        np.testing.assert_allclose(lp.dense_matrix() * lp.row_scale / lp.col_scale, a)
    assert np.all(np.diff(lp.a_start) >= 2)
    # row indices sorted within each column
    for j in range(lp.num_col):
        seg = lp.a_index[lp.a_start[j] : lp.a_start[j + 1]]
        assert np.all(np.diff(seg) > 0)


def test_shape_mismatch_is_named() -> None:
    from dosewise.errors import InputError

    with pytest.raises(InputError, match=r"optimize\.budget"):
        tiny_problem(budget=np.array([1000]))
