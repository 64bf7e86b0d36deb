"""The sparse variable set: only the ``x[i, l, w, t]`` that can be nonzero.

A variable exists when participant ``i`` can use lot ``l`` (acceptance, approval, cold chain),
week ``w`` lies in ``[first_week[i, l], last_week[i, l]]`` (availability + lead time; expiry −
minimum shelf life) and, for participants without a weekly capacity, ``w`` is the first
deliverable week: with no capacity limit, delivering later is never better (the value of a dose
falls with the week and nothing else couples weeks), so the other weeks are dominated columns.

Columns are ordered lexicographically by (participant, lot, week, tier), tier fastest. The set
is generated with ``np.repeat`` over (participant, lot) pairs, never a Python loop over columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dosewise.optimize.problem import ProblemData

I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Variables:
    """Coordinates of every column: ``part``, ``lot``, ``week``, ``tier`` (int32, one per column)."""

    part: I32
    lot: I32
    week: I32
    tier: I32

    @property
    def size(self) -> int:
        return int(self.part.shape[0])

    def dense_index(self, n: int, n_lots: int, weeks: int, tiers: int) -> npt.NDArray[np.int64]:
        """Position of each column in a dense (n, L, W, T) array."""
        return ((self.part.astype(np.int64) * n_lots + self.lot) * weeks + self.week) * tiers + self.tier


def week_ranges(data: ProblemData) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(lo, count) per (participant, lot): first deliverable week and number of weeks (0: none)."""
    lo = np.maximum(data.first_week, 0)
    hi = np.minimum(data.last_week, data.weeks - 1)
    count = np.where(data.usable, np.clip(hi - lo + 1, 0, None), 0)
    count = np.where(np.isinf(data.capacity)[:, None], np.minimum(count, 1), count)
    return lo.astype(np.int64), count.astype(np.int64)


def build_variables(data: ProblemData) -> Variables:
    """Every column that can carry doses, ordered by (participant, lot, week, tier)."""
    lo, count = week_ranges(data)
    T = data.tiers
    pi, pl = np.nonzero(count > 0)  # row-major: sorted by participant then lot
    k = count[pi, pl]
    offsets = np.cumsum(k) - k
    total = int(k.sum())
    rep = np.repeat(np.arange(len(k)), k)
    week = lo[pi, pl][rep] + (np.arange(total) - offsets[rep])
    part = np.repeat(pi[rep].astype(np.int32), T)
    lot = np.repeat(pl[rep].astype(np.int32), T)
    wk = np.repeat(week.astype(np.int32), T)
    tier = np.tile(np.arange(T, dtype=np.int32), total)
    return Variables(part=part, lot=lot, week=wk, tier=tier)
