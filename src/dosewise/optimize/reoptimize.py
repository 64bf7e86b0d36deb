"""Re-optimise the returned doses after a decline, in place on the live HiGHS model.

Only the declined doses move: every column keeps at least its current doses (lower bound =
current schedule), columns of other lots cannot grow (upper bound = current), the decliner's
columns for the lot (and any pair that declined before) are fixed at 0, a decliner gives up its
equity floor, and the lot's row may hold only what the others already have plus the returned
doses. HiGHS then re-solves from the
last basis (``changeColsBounds`` / ``changeRowsBounds``, no rebuild), and the increase of each
participant's doses of the lot is the answer, rounded to the product's shipping unit without
exceeding the returned doses or anyone's remaining capacity.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from dosewise.errors import AllocationError, InputError
from dosewise.optimize.assign import lot_room, schedule_state
from dosewise.optimize.policy import OptimalState
from dosewise.optimize.solve import read_solution
from dosewise.optimize.variables import week_ranges
from dosewise.policies.pro_rata import round_to_units


def _locate(index: pd.Index, key: str, what: str) -> int:
    try:
        loc = index.get_loc(key)
        if not isinstance(loc, int | np.integer):
            raise InputError(f"{what} is not unique", field=what, value=key)
        return int(loc)
    except KeyError:
        raise InputError(f"unknown {what}", field=what, value=key) from None


def set_decline_bounds(state: OptimalState, part: int, lot: int, returned: float) -> None:
    """Change the live model's bounds so that only ``returned`` doses of ``lot`` can move."""
    lp, h = state.lp, state.highs
    v = lp.variables
    x_units = state.x / lp.col_scale
    on_lot = v.lot == lot
    blocked = np.zeros(lp.num_col, dtype=np.bool_)
    for di, dl in state.declined | {(part, lot)}:
        blocked |= (v.part == di) & (v.lot == dl)
    lower = np.where(blocked, 0.0, x_units)
    upper = np.where(on_lot, np.maximum(lp.col_upper, x_units), x_units)
    upper = np.where(blocked, 0.0, upper)
    cols = np.arange(lp.num_col, dtype=np.int32)
    h.changeColsBounds(lp.num_col, cols, lower, upper)
    others = float(state.x[on_lot & ~blocked].sum())
    row = np.array([lp.families["lot"][0] + lot], dtype=np.int32)
    h.changeRowsBounds(1, row, np.array([-np.inf]), np.array([(others + returned) / lp.row_scale]))
    # a participant that declines gives up its equity floor
    decliners = np.array(sorted({p for p, _ in state.declined} | {part}), dtype=np.int64)
    pos = np.flatnonzero(np.isin(lp.part_participants, decliners))
    if pos.size:
        start = lp.families["participant"][0]
        upper_rows = lp.row_upper[start + pos]
        h.changeRowsBounds(
            int(pos.size), (start + pos).astype(np.int32), np.full(pos.size, -np.inf), upper_rows.astype(np.float64)
        )


def reoptimize_after_decline(
    state: OptimalState, participant: str, lot: str, doses: int | None = None
) -> pd.Series:
    """Re-allocate the ``doses`` of ``lot`` that ``participant`` declined; whole doses per participant.

    ``doses`` defaults to the decliner's current doses of the lot. Returns only the new doses
    (a Series over all participants, 0 for most, the decliner always 0), summing to at most
    ``doses``; updates ``state.x`` and ``state.declined`` so later declines build on it.
    """
    i = _locate(state.data.participants, participant, "participant")
    lot_i = _locate(state.data.lots, lot, "lot")
    lp, v = state.lp, state.lp.variables
    t0 = time.perf_counter()
    mine = (v.part == i) & (v.lot == lot_i)
    returned = float(state.x[mine].sum()) if doses is None else float(doses)
    if returned < 0:
        raise InputError("declined doses must not be negative", field="doses", value=doses)
    old = state.x.copy()
    set_decline_bounds(state, i, lot_i, returned)
    t1 = time.perf_counter()
    state.highs.run()
    try:
        sol = read_solution(state.highs, lp, time.perf_counter() - t1)
    except AllocationError as exc:
        raise AllocationError(f"re-optimising after {participant} declined lot {lot}: {exc}") from exc
    t2 = time.perf_counter()
    on_lot = v.lot == lot_i
    gain = np.clip(sol.x - old, 0.0, None) * on_lot
    inc = np.asarray(np.bincount(v.part, weights=gain, minlength=state.data.n), dtype=np.float64)
    inc[i] = 0.0
    unit = int(state.data.unit[lot_i]) if state.params.round_to_shipping_unit else 1
    base = np.where(mine, 0.0, old)
    load, people, total = schedule_state(lp, base)
    lo, count = week_ranges(state.data)
    _, _, _, room = lot_room(lp, lot_i, load, people, total, lo, count)
    room[i] = 0.0
    given = round_to_units(inc, unit, int(np.floor(returned + 1e-6)), upper=room)
    state.x = sol.x
    state.declined.add((i, lot_i))
    state.timings["reoptimize"] = time.perf_counter() - t0
    state.timings["reoptimize_solve"] = t2 - t1
    return pd.Series(given, index=state.data.participants, name="doses", dtype=np.int64)
