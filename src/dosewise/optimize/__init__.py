"""The ``optimal`` policy: a HiGHS linear programme over participant × lot × week × tier.

Build → solve → assign are separate public steps (as in PyPSA / linopy):

>>> data = problem_from_world(world, tier_sizes=sizes, deaths_averted_per_dose=dap)  # doctest: +SKIP
>>> lp = build_lp(data)                       # sparse CSC arrays, int32 indices   # doctest: +SKIP
>>> solution = solve_lp(lp)                   # highspy, status checked            # doctest: +SKIP
>>> rounded = round_solution(lp, solution.x)  # whole shipping units               # doctest: +SKIP

:func:`allocate_optimal` is the registered policy; :func:`solve_optimal` also keeps the live
solver so :func:`reoptimize_after_decline` can re-allocate declined doses in well under a second.
"""

from dosewise.optimize.assign import Rounded, assign_solution, round_solution, schedule_frame
from dosewise.optimize.build import FAMILIES, LinearProgram, build_lp
from dosewise.optimize.closed_loop import closed_loop
from dosewise.optimize.metrics import gini, inequality, inequality_table
from dosewise.optimize.policy import (
    OptimalState,
    allocate_optimal,
    floor_capacity_problems,
    solve_optimal,
    tier_arrays,
)
from dosewise.optimize.problem import ProblemData, fold_tiers, linear_discount, problem_from_world
from dosewise.optimize.reoptimize import reoptimize_after_decline
from dosewise.optimize.solve import AUTO_IPM_COLUMNS, SOLVERS, Solution, choose_solver, explain_infeasible, solve_lp
from dosewise.optimize.variables import Variables, build_variables, week_ranges

__all__ = [
    "AUTO_IPM_COLUMNS",
    "FAMILIES",
    "SOLVERS",
    "LinearProgram",
    "OptimalState",
    "ProblemData",
    "Rounded",
    "Solution",
    "Variables",
    "allocate_optimal",
    "assign_solution",
    "build_lp",
    "build_variables",
    "choose_solver",
    "closed_loop",
    "explain_infeasible",
    "floor_capacity_problems",
    "fold_tiers",
    "gini",
    "inequality",
    "inequality_table",
    "linear_discount",
    "problem_from_world",
    "reoptimize_after_decline",
    "round_solution",
    "schedule_frame",
    "solve_lp",
    "solve_optimal",
    "tier_arrays",
    "week_ranges",
]
