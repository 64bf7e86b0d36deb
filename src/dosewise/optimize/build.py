"""Assemble the allocation LP as column-wise sparse (CSC) arrays.

Rows, in this order (each a *family* so errors and tests can name them):

=============  ==========  ====================================================  ==============
family         rows        sum                                                   bound
=============  ==========  ====================================================  ==============
``lot``        L           Σ_{i,w,t} x[i,l,w,t]                                  ≤ budget[l]
``tier``       n × T       Σ_{l,w} x[i,l,w,t] / course[l]   (people)             ≤ people[i,t]
``capacity``   n_cap × W   Σ_{l,t} x[i,l,w,t]                                    ≤ capacity[i]
``participant``n_part      Σ_{l,w,t} x[i,l,w,t]                                  in [floor, cap]
=============  ==========  ====================================================  ==============

``capacity`` rows exist only for participants with a finite weekly capacity, ``participant``
rows only for those with an equity floor or a share cap. Each column has exactly one entry in
each family it touches, and families are laid out in increasing row order, so the row indices
of a column come out sorted. Everything is broadcast index arithmetic in int32.

Scaling: variables are counted in ``scale`` doses (a power of ten that brings the largest lot
to about 10⁴ units) and the objective is divided by its largest coefficient, which keeps HiGHS
within its tolerances when lots hold 10⁸ doses and a dose averts 10⁻⁴ deaths. With ``mip=True``
each column counts shipping units of its lot's product and is integral.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dosewise.optimize.problem import ProblemData
from dosewise.optimize.variables import Variables, build_variables

FloatArray = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]

FAMILIES = ("lot", "tier", "capacity", "participant")


@dataclass(frozen=True)
class LinearProgram:
    """A maximisation LP in HiGHS's column-wise form, plus what is needed to read it back."""

    data: ProblemData
    variables: Variables
    col_cost: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    a_start: I32
    a_index: I32
    a_value: FloatArray
    value: FloatArray
    """Deaths averted per dose of each column (unscaled)."""
    col_scale: FloatArray
    """Doses per LP unit of each column."""
    row_scale: float
    obj_scale: float
    families: dict[str, tuple[int, int]]
    cap_participants: npt.NDArray[np.int64]
    """Participant of each block of W capacity rows."""
    part_participants: npt.NDArray[np.int64]
    """Participant of each ``participant`` row."""
    integrality: npt.NDArray[np.uint8] | None = None
    meta: dict[str, float] = field(default_factory=dict)

    @property
    def num_col(self) -> int:
        return int(self.col_cost.shape[0])

    @property
    def num_row(self) -> int:
        return int(self.row_lower.shape[0])

    @property
    def num_nz(self) -> int:
        return int(self.a_index.shape[0])

    def row_label(self, row: int) -> str:
        """A readable name for a row: family and coordinates."""
        d = self.data
        for fam, (a, b) in self.families.items():
            if a <= row < b:
                k = row - a
                if fam == "lot":
                    return f"lot[{_name(d.lots, k)}]"
                if fam == "tier":
                    i, t = divmod(k, d.tiers)
                    return f"tier[{_name(d.participants, i)}, tier {t}]"
                if fam == "capacity":
                    b_, w = divmod(k, d.weeks)
                    return f"capacity[{_name(d.participants, int(self.cap_participants[b_]))}, week {w}]"
                return f"participant[{_name(d.participants, int(self.part_participants[k]))}]"
        raise IndexError(row)

    def col_label(self, col: int) -> str:
        v, d = self.variables, self.data
        return (
            f"x[{_name(d.participants, int(v.part[col]))}, {_name(d.lots, int(v.lot[col]))}, "
            f"week {int(v.week[col])}, tier {int(v.tier[col])}]"
        )

    def dense_matrix(self) -> FloatArray:
        """The constraint matrix as a dense array (tests and small instances only)."""
        out = np.zeros((self.num_row, self.num_col))
        cols = np.repeat(np.arange(self.num_col), np.diff(self.a_start))
        out[self.a_index, cols] = self.a_value
        return out


def _name(index: object, k: int) -> str:
    try:
        return str(index[k])  # type: ignore[index]
    except (IndexError, TypeError, KeyError):
        return str(k)


def _scale_for(budget: npt.NDArray[np.int64]) -> float:
    top = float(budget.max()) if budget.size else 1.0
    return float(10 ** max(0, int(np.floor(np.log10(max(top, 1.0)))) - 4))


def build_lp(data: ProblemData, variables: Variables | None = None, *, mip: bool = False) -> LinearProgram:
    """The LP (or MIP, counting shipping units) over ``variables`` (default: all that can be nonzero)."""
    v = build_variables(data) if variables is None else variables
    n, L, W, T = data.n, data.n_lots, data.weeks, data.tiers
    i, lot, w, t = v.part, v.lot, v.week, v.tier

    finite_cap = np.isfinite(data.capacity)
    cap_participants = np.flatnonzero(finite_cap)
    cap_pos = np.full(n, -1, dtype=np.int32)
    cap_pos[cap_participants] = np.arange(cap_participants.size, dtype=np.int32)
    has_part = (data.floor > 0) | np.isfinite(data.share_cap)
    part_participants = np.flatnonzero(has_part)
    part_pos = np.full(n, -1, dtype=np.int32)
    part_pos[part_participants] = np.arange(part_participants.size, dtype=np.int32)

    r_lot, r_tier = 0, L
    r_cap = r_tier + n * T
    r_part = r_cap + cap_participants.size * W
    num_row = r_part + part_participants.size
    families = {
        "lot": (r_lot, r_tier),
        "tier": (r_tier, r_cap),
        "capacity": (r_cap, r_part),
        "participant": (r_part, num_row),
    }

    scale = _scale_for(data.budget)
    col_scale = data.unit[lot].astype(np.float64) if mip else np.full(v.size, scale)

    rows = np.empty((v.size, 4), dtype=np.int32)
    rows[:, 0] = r_lot + lot
    rows[:, 1] = r_tier + i * np.int32(T) + t
    cp = cap_pos[i]
    rows[:, 2] = np.where(cp >= 0, r_cap + cp * np.int32(W) + w, -1)
    pp = part_pos[i]
    rows[:, 3] = np.where(pp >= 0, r_part + pp, -1)
    coef = np.empty((v.size, 4))
    unit_coef = col_scale / scale
    coef[:, 0] = unit_coef
    coef[:, 1] = unit_coef / data.course[lot]
    coef[:, 2] = unit_coef
    coef[:, 3] = unit_coef
    present = rows >= 0
    nnz = present.sum(axis=1)
    a_start = np.zeros(v.size + 1, dtype=np.int32)
    np.cumsum(nnz, out=a_start[1:])
    a_index = rows[present]
    a_value = coef[present]

    inf = np.inf
    row_lower = np.full(num_row, -inf)
    row_upper = np.empty(num_row)
    row_upper[r_lot:r_tier] = data.budget / scale
    row_upper[r_tier:r_cap] = data.tier_people.ravel() / scale
    row_upper[r_cap:r_part] = np.repeat(data.capacity[cap_participants], W) / scale
    row_upper[r_part:] = data.share_cap[part_participants] / scale
    row_lower[r_part:] = data.floor[part_participants] / scale

    value = data.value[i, t] * data.product_factor[lot] * data.discount[w]
    if data.lot_factor is not None:
        value = value * data.lot_factor[i, lot]
    raw_cost = value * col_scale
    obj_scale = float(raw_cost.max()) if raw_cost.size and raw_cost.max() > 0 else 1.0
    upper_doses = np.minimum.reduce(
        [
            data.budget[lot].astype(np.float64),
            data.capacity[i],
            data.tier_people[i, t] * data.course[lot],
            data.share_cap[i],
        ]
    )
    col_upper = upper_doses / col_scale
    if mip:
        col_upper = np.floor(col_upper + 1e-9)
    return LinearProgram(
        data=data,
        variables=v,
        col_cost=raw_cost / obj_scale,
        col_lower=np.zeros(v.size),
        col_upper=col_upper,
        row_lower=row_lower,
        row_upper=row_upper,
        a_start=a_start,
        a_index=a_index,
        a_value=a_value,
        value=value,
        col_scale=col_scale,
        row_scale=scale,
        obj_scale=obj_scale,
        families=families,
        cap_participants=cap_participants,
        part_participants=part_participants,
        integrality=np.ones(v.size, dtype=np.uint8) if mip else None,
    )
