"""Solve a :class:`~dosewise.optimize.build.LinearProgram` with HiGHS (highspy), check the status
and explain infeasibility.

The model goes to HiGHS in one ``passModel`` call from the CSC arrays. The ``Highs`` object is
kept on the :class:`Solution` so a later re-solve (after a decline) changes bounds in place and
starts from the last basis. An infeasible model raises :class:`~dosewise.errors.AllocationError`
naming the constraint families and rows of HiGHS's irreducible infeasible subsystem (IIS).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from dosewise.errors import AllocationError, InputError
from dosewise.optimize.build import LinearProgram

FloatArray = npt.NDArray[np.float64]

_IIS_ELASTIC = 2
"""HiGHS ``iis_strategy``: 2 = elastic LP (fast, names the rows whose relaxation restores feasibility)."""

SOLVERS = ("auto", "simplex", "ipm", "pdlp")
"""HiGHS LP algorithms a caller may name (``policy.options.solver``)."""

AUTO_IPM_COLUMNS = 1_000_000
"""``solver="auto"`` uses the dual simplex up to this many columns and the interior point method
(IPX, no crossover) above. Measured on 2 cores (benchmarks/optimize.py): the global instance
(~0.1 M columns) solves in well under a second by simplex, which also leaves a basis for warm
re-solves after a decline; the 5.2 M-column sub-national instance did not finish in 900 s by
simplex, but does by IPX."""


def choose_solver(lp: LinearProgram, solver: str = "auto") -> str:
    """The HiGHS algorithm for ``lp``: ``solver`` itself, or by size when it is ``"auto"``."""
    if solver not in SOLVERS:
        raise InputError(f"unknown solver; known: {', '.join(SOLVERS)}", field="policy.options.solver", value=solver)
    if solver != "auto":
        return solver
    return "ipm" if lp.num_col > AUTO_IPM_COLUMNS else "simplex"


@dataclass
class Solution:
    """Doses per column (``x``), the LP objective in deaths averted, and the live solver."""

    x: FloatArray
    objective: float
    status: str
    highs: Any = field(repr=False)
    seconds: float = 0.0
    iterations: int = 0
    solver: str = "simplex"


_BANNER_SHOWN = False


def _construct(*, quiet: bool) -> Any:
    """``highspy.Highs()``; HiGHS prints its banner to the C-level stdout at the first construction
    in a process, before any option can turn output off, so ``quiet`` sends that one to /dev/null."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN or not quiet:
        _BANNER_SHOWN = True
        return highspy.Highs()  # type: ignore[no-untyped-call]
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _BANNER_SHOWN = True
    return h


def new_highs(
    *,
    threads: int | None = None,
    time_limit: float | None = None,
    log: bool = False,
    solver: str = "simplex",
    crossover: bool = False,
) -> Any:
    """A ``Highs`` object with its options set; ``solver`` as HiGHS names it (simplex, ipm, pdlp).

    With ``solver="ipm"`` and no ``crossover`` the solution is an interior point, slightly
    fractional in places and without a basis; :func:`~dosewise.optimize.assign.round_solution`
    handles it like any other, and a later re-solve starts afresh rather than warm.
    """
    h = _construct(quiet=not log)
    h.setOptionValue("output_flag", log)
    if solver != "simplex":
        h.setOptionValue("solver", solver)
        h.setOptionValue("run_crossover", "on" if crossover else "off")
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
    solver: str = "auto",
    crossover: bool = False,
) -> Solution:
    """Solve ``lp`` and return doses per column; raise :class:`AllocationError` unless optimal.

    ``solver``: one of :data:`SOLVERS` (``"auto"``: simplex up to :data:`AUTO_IPM_COLUMNS`
    columns, interior point above). Ignored when a live ``highs`` is given.
    """
    h = highs
    if h is None:
        algo = choose_solver(lp, solver)
        h = new_highs(threads=threads, time_limit=time_limit, log=log, solver=algo, crossover=crossover)
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
            solver=_option_text(h, "solver").replace("choose", "simplex"),
            iterations=sum(
                max(int(getattr(info, k, 0)), 0)
                for k in ("simplex_iteration_count", "ipm_iteration_count", "pdlp_iteration_count")
            ),
        )
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        raise AllocationError(explain_infeasible(h, lp))
    if status == highspy.HighsModelStatus.kUnbounded:
        raise AllocationError(
            "the allocation LP is unbounded: some column has no finite bound; this is a bug in the model builder"
        )
    raise AllocationError(f"HiGHS stopped without an optimal allocation: {text}")


def _option_text(h: Any, name: str) -> str:
    raw = h.getOptionValue(name)
    return str(raw[1] if isinstance(raw, tuple) else raw)


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
