"""Solve a :class:`~dosewise.optimize.build.LinearProgram` with HiGHS (highspy), check the status
and explain infeasibility.

The model goes to HiGHS in one ``passModel`` call from the CSC arrays. The ``Highs`` object is
kept on the :class:`Solution` so a later re-solve (after a decline) changes bounds in place and
starts from the last basis. An infeasible model raises :class:`~dosewise.errors.AllocationError`
naming the constraint families and rows of HiGHS's irreducible infeasible subsystem (IIS).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from dosewise.errors import AllocationError
from dosewise.optimize.build import LinearProgram

FloatArray = npt.NDArray[np.float64]

_IIS_ELASTIC = 2
"""HiGHS ``iis_strategy``: 2 = elastic LP (fast, names the rows whose relaxation restores feasibility)."""


@dataclass
class Solution:
    """Doses per column (``x``), the LP objective in deaths averted, and the live solver."""

    x: FloatArray
    objective: float
    status: str
    highs: Any = field(repr=False)
    seconds: float = 0.0
    iterations: int = 0


def new_highs(*, threads: int | None = None, time_limit: float | None = None, log: bool = False) -> Any:
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", log)
    if threads is not None:
        h.setOptionValue("threads", threads)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    return h


def pass_model(h: Any, lp: LinearProgram) -> None:
    """Hand the whole model to HiGHS in one call (column-wise, maximise)."""
    integrality = lp.integrality if lp.integrality is not None else np.zeros(lp.num_col, dtype=np.uint8)
    status = h.passModel(
        lp.num_col,
        lp.num_row,
        lp.num_nz,
        1,  # MatrixFormat::kColwise
        int(highspy.ObjSense.kMaximize),
        0.0,
        lp.col_cost,
        lp.col_lower,
        lp.col_upper,
        lp.row_lower,
        lp.row_upper,
        lp.a_start[:-1],
        lp.a_index,
        lp.a_value,
        integrality.astype(np.int32),
    )
    if status != highspy.HighsStatus.kOk:
        raise AllocationError(f"HiGHS rejected the model ({status}); this is a bug in the model builder")


def solve_lp(
    lp: LinearProgram,
    *,
    threads: int | None = None,
    time_limit: float | None = None,
    log: bool = False,
    highs: Any = None,
) -> Solution:
    """Solve ``lp`` and return doses per column; raise :class:`AllocationError` unless optimal."""
    h = highs if highs is not None else new_highs(threads=threads, time_limit=time_limit, log=log)
    if highs is None:
        pass_model(h, lp)
    t0 = time.perf_counter()
    h.run()
    return read_solution(h, lp, time.perf_counter() - t0)


def read_solution(h: Any, lp: LinearProgram, seconds: float) -> Solution:
    """Read a solved model back, checking the status."""
    status = h.getModelStatus()
    text = h.modelStatusToString(status)
    if status == highspy.HighsModelStatus.kOptimal:
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=np.float64) * lp.col_scale
        x = np.clip(x, 0.0, None)
        info = h.getInfo()
        return Solution(
            x=x,
            objective=float(lp.value @ x),
            status=text,
            highs=h,
            seconds=seconds,
            iterations=int(info.simplex_iteration_count) + int(max(info.ipm_iteration_count, 0)),
        )
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        raise AllocationError(explain_infeasible(h, lp))
    if status == highspy.HighsModelStatus.kUnbounded:
        raise AllocationError(
            "the allocation LP is unbounded: some column has no finite bound; this is a bug in the model builder"
        )
    raise AllocationError(f"HiGHS stopped without an optimal allocation: {text}")


def explain_infeasible(h: Any, lp: LinearProgram, *, limit: int = 8) -> str:
    """Name the constraint families (and up to ``limit`` rows) in HiGHS's IIS."""
    h.setOptionValue("iis_strategy", _IIS_ELASTIC)
    h.setOptionValue("iis_time_limit", 30.0)
    status, iis = h.getIis()
    rows: list[int] = list(iis.row_index_) if status == highspy.HighsStatus.kOk and iis.valid_ else []
    if not rows:
        return (
            "the allocation LP is infeasible (HiGHS found no irreducible infeasible subsystem); "
            "families in the model: " + ", ".join(f for f, (a, b) in lp.families.items() if b > a)
        )
    families = Counter(_family(lp, r) for r in rows)
    named = ", ".join(lp.row_label(r) for r in rows[:limit]) + (" …" if len(rows) > limit else "")
    return (
        "the allocation LP is infeasible; binding constraint families: "
        + ", ".join(f"{f} ({k} rows)" for f, k in families.most_common())
        + f"; rows: {named}"
    )


def _family(lp: LinearProgram, row: int) -> str:
    for fam, (a, b) in lp.families.items():
        if a <= row < b:
            return fam
    return "?"
