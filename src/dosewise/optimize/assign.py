"""Solution → whole shipping units → :class:`~dosewise.allocation.Allocation`.

The LP gives fractional doses per (participant, lot, week, tier). Lot by lot, each
participant's doses are rounded to the product's shipping unit by largest remainder
(:func:`~dosewise.policies.round_to_units`), never beyond the lot's budget and never beyond
what the participant can still absorb: its weekly capacity in the weeks the lot can reach it,
its unvaccinated people in every tier, and its share cap. A participant whose equity floor a
round-down would break is rounded up first. Rounding down scales that participant's schedule
for the lot; rounding up places the extra doses in the earliest weeks with spare capacity and
the oldest tiers with people left. The schedule stays feasible throughout, and the objective
lost to rounding is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.optimize.build import LinearProgram
from dosewise.optimize.solve import Solution
from dosewise.optimize.variables import week_ranges
from dosewise.policies.pro_rata import round_to_units
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Rounded:
    """Whole doses per (participant, lot), the rounded schedule per column and the objectives."""

    doses: IntArray
    x: FloatArray
    objective_lp: float
    objective_rounded: float

    @property
    def lost_to_rounding(self) -> float:
        return self.objective_lp - self.objective_rounded


def _bincount(x: npt.ArrayLike, weights: npt.ArrayLike, minlength: int) -> FloatArray:
    return np.asarray(np.bincount(np.asarray(x), weights=np.asarray(weights), minlength=minlength), dtype=np.float64)


def lot_columns(lp: LinearProgram) -> list[npt.NDArray[np.int64]]:
    """Column positions of each lot."""
    order = np.argsort(lp.variables.lot, kind="stable")
    bounds = np.searchsorted(lp.variables.lot[order], np.arange(lp.data.n_lots + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(lp.data.n_lots)]


def round_solution(lp: LinearProgram, x: FloatArray, *, round_units: bool = True) -> Rounded:
    """Round the LP doses to shipping units without breaking any lot, capacity, tier or share cap."""
    d, v = lp.data, lp.variables
    n, L, W, T = d.n, d.n_lots, d.weeks, d.tiers
    x = np.clip(x, 0.0, None)  # HiGHS may return -1e-9 within its tolerances
    obj_lp = float(lp.value @ x)
    lo, count = week_ranges(d)
    load, people, total = schedule_state(lp, x)
    doses = np.zeros((n, L), dtype=np.int64)
    for lot, cols in enumerate(lot_columns(lp)):
        if cols.size == 0:
            continue
        part = v.part[cols].astype(np.int64)
        a = _bincount(part, weights=x[cols], minlength=n)
        unit = int(d.unit[lot]) if round_units else 1
        in_range, cap_slack, tier_slack, slack = lot_room(lp, lot, load, people, total, lo, count)
        upper = a + slack
        rounded_down = np.floor(a / unit + 1e-9) * unit
        priority = (total - a + rounded_down) < d.floor - 1e-6
        r = round_to_units(a, unit, int(d.budget[lot]), upper=upper, priority=priority).astype(np.float64)
        doses[:, lot] = r.astype(np.int64)
        old = x[cols].copy()
        down = np.divide(r, a, out=np.zeros(n), where=a > 0)
        x[cols] = old * np.minimum(down, 1.0)[part]
        delta = np.where(r > a, r - a, 0.0)
        up = np.flatnonzero(delta > 1e-9)
        if up.size:
            _place(lp, x, cols, up, delta[up], cap_slack[up], in_range[up], tier_slack[up], lo[up, lot], lot)
        new = x[cols]
        load += _bincount(part * W + v.week[cols], weights=new - old, minlength=n * W).reshape(n, W)
        people += _bincount(part * T + v.tier[cols], weights=(new - old) / d.course[lot], minlength=n * T).reshape(
            n, T
        )
        total += _bincount(part, weights=new - old, minlength=n)
    return Rounded(doses=doses, x=x, objective_lp=obj_lp, objective_rounded=float(lp.value @ x))


def lot_room(
    lp: LinearProgram,
    lot: int,
    load: FloatArray,
    people: FloatArray,
    total: FloatArray,
    lo: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.bool_], FloatArray, FloatArray, FloatArray]:
    """Room for more doses of ``lot`` per participant given the schedule's weekly ``load``,
    ``people`` vaccinated per tier and ``total`` doses: (weeks in range, capacity slack per week,
    tier slack in doses, overall room)."""
    d = lp.data
    weeks = np.arange(d.weeks)
    cap = d.capacity
    in_range = (weeks[None, :] >= lo[:, lot, None]) & (weeks[None, :] < lo[:, lot, None] + count[:, lot, None])
    cap_slack = np.where(in_range, np.clip(cap[:, None] - load, 0.0, None), 0.0)
    slack_w = np.where(np.isinf(cap), np.inf, cap_slack.sum(axis=1))
    tier_slack = np.clip(d.tier_people - people, 0.0, None) * d.course[lot]
    per_lot = int(d.meta.get("tiers_per_lot", 0))
    if per_lot:  # tiers belong to one lot each (t // per_lot): only the lot's own tiers have room
        tier_slack = np.where(np.arange(d.tiers)[None, :] // per_lot == lot, tier_slack, 0.0)
    room = np.minimum.reduce([slack_w, tier_slack.sum(axis=1), np.clip(d.share_cap - total, 0.0, None)])
    return in_range, cap_slack, tier_slack, np.where(count[:, lot] > 0, room, 0.0)


def schedule_state(lp: LinearProgram, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(load per participant × week, people per participant × tier, total doses per participant)."""
    d, v = lp.data, lp.variables
    n, W, T = d.n, d.weeks, d.tiers
    part = v.part.astype(np.int64)
    load = _bincount(part * W + v.week, weights=x, minlength=n * W).reshape(n, W)
    people = _bincount(part * T + v.tier, weights=x / d.course[v.lot], minlength=n * T).reshape(n, T)
    return load, people, _bincount(v.part, weights=x, minlength=d.n)


def _fill(need: FloatArray, room: FloatArray) -> FloatArray:
    """Fill ``need[k]`` into ``room[k, :]`` left to right."""
    before = np.cumsum(room, axis=1) - room
    return np.asarray(np.clip(need[:, None] - before, 0.0, room), dtype=np.float64)


def _place(
    lp: LinearProgram,
    x: FloatArray,
    cols: npt.NDArray[np.int64],
    up: npt.NDArray[np.int64],
    delta: FloatArray,
    cap_slack: FloatArray,
    in_range: npt.NDArray[np.bool_],
    tier_slack: FloatArray,
    lo: npt.NDArray[np.int64],
    lot: int,
) -> None:
    """Add ``delta`` doses of ``lot`` for participants ``up``: earliest weeks, oldest tiers first."""
    d, v = lp.data, lp.variables
    T = d.tiers
    unlimited = np.isinf(d.capacity[up])
    room_w = np.where(unlimited[:, None], np.where(np.arange(d.weeks)[None, :] == lo[:, None], np.inf, 0.0), cap_slack)
    room_w = np.where(in_range, room_w, 0.0)
    fill_w = _fill(delta, np.where(np.isinf(room_w), delta[:, None], room_w))
    fill_t = _fill(delta, tier_slack)
    add = fill_w[:, :, None] * fill_t[:, None, :] / delta[:, None, None]  # (|up|, W, T)
    # column of (participant, lot, week, tier): pairs are contiguous, week-major then tier
    part = v.part[cols]
    first = np.full(d.n, -1, dtype=np.int64)
    uniq, at = np.unique(part, return_index=True)
    first[uniq] = cols[at]
    k, w, t = np.nonzero(add > 0)
    per_lot = int(d.meta.get("tiers_per_lot", 0))
    # with tiers per lot, a (participant, lot) pair has columns for its lot's tiers only
    pos = (first[up[k]] + (w - lo[k]) * per_lot + (t - lot * per_lot) if per_lot
           else first[up[k]] + (w - lo[k]) * T + t)
    np.add.at(x, pos, add[k, w, t])


def schedule_frame(lp: LinearProgram, x: FloatArray, *, tol: float = 0.5) -> pd.DataFrame:
    """Long frame of the nonzero columns: participant, lot, week, tier, doses."""
    v, d = lp.variables, lp.data
    keep = np.flatnonzero(x > tol)
    return pd.DataFrame(
        {
            "participant": np.asarray(d.participants)[v.part[keep]] if len(d.participants) else v.part[keep],
            "lot": np.asarray(d.lots)[v.lot[keep]] if len(d.lots) else v.lot[keep],
            "week": v.week[keep],
            "tier": v.tier[keep],
            "doses": x[keep],
        }
    )


def assign_solution(
    world: World,
    lp: LinearProgram,
    solution: Solution,
    *,
    policy: str = "optimal",
    params: dict[str, Any] | None = None,
    round_units: bool = True,
    notes: dict[str, Any] | None = None,
) -> Allocation:
    """The :class:`Allocation` of a solved LP: whole shipping units, buffer and remainder per lot."""
    rounded = round_solution(lp, solution.x, round_units=round_units and lp.integrality is None)
    supply = world.lots["doses"].to_numpy(dtype=np.int64)
    buffer = np.asarray(lp.data.meta.get("buffer", np.zeros(len(supply), dtype=np.int64)), dtype=np.int64)
    remainder = supply - buffer - rounded.doses.sum(axis=0)
    out_notes: dict[str, Any] = {
        "objective_lp": rounded.objective_lp,
        "objective_rounded": rounded.objective_rounded,
        "lost_to_rounding": rounded.lost_to_rounding,
        "solver_status": solution.status,
        "solve_seconds": solution.seconds,
        "columns": lp.num_col,
        "rows": lp.num_row,
        "schedule": schedule_frame(lp, rounded.x),
        **(notes or {}),
    }
    return Allocation(
        policy=policy,
        participants=world.participants.index,
        lots=world.lots,
        doses=rounded.doses,
        buffer=buffer,
        remainder=remainder,
        params=params or {},
        notes=out_notes,
    )
