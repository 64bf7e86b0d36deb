"""The ``optimal`` policy: most deaths averted under the real constraints, with an equity floor.

Options (``policy.options`` in a scenario):

=================  ========  ===================================================================
option             default   meaning
=================  ========  ===================================================================
``equity_floor``   0         each participant gets at least this share of its pro-rata
                             (``covax-pro-rata``) entitlement; 0 is pure efficiency
``max_share``      none      no participant gets more than this share of the supply
``weeks``          52        planning horizon in weeks
``tiers``          4         priority tiers per participant, oldest first
``late_discount``  0.5       value lost by a dose delivered at the end of the horizon
``mip``            false     count shipping units as integers (small instances only)
``start``          earliest  date of week 0 (default: the earliest lot availability)
``threads``        HiGHS     solver threads
``solver``         auto      HiGHS algorithm: ``simplex``, ``ipm`` (interior point, no
                             crossover), ``pdlp``, or ``auto``: simplex up to 1,000,000 LP
                             columns, ipm above (:data:`~dosewise.optimize.solve.AUTO_IPM_COLUMNS`)
``time_limit``     none      seconds HiGHS may take before the policy fails
=================  ========  ===================================================================

Tranches do not bind this policy (they are a pro-rata device); coverage caps, the buffer and
shipping units do.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.errors import AllocationError, InputError
from dosewise.optimize.assign import assign_solution
from dosewise.optimize.build import LinearProgram, build_lp
from dosewise.optimize.problem import (
    DEFAULT_LATE_DISCOUNT,
    DEFAULT_TIERS,
    DEFAULT_WEEKS,
    ProblemData,
    problem_from_world,
)
from dosewise.optimize.solve import Solution, solve_lp
from dosewise.optimize.variables import week_ranges
from dosewise.scenario import PolicyParams
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]

POLICY_NAME = "optimal"


@dataclass
class OptimalState:
    """Everything a re-solve needs: the world, the LP, the live solver and the current schedule.

    ``x`` is the current schedule in doses per LP column; :func:`reoptimize_after_decline`
    updates it (and ``declined``) in place.
    """

    world: World
    params: PolicyParams
    data: ProblemData
    lp: LinearProgram
    solution: Solution
    allocation: Allocation
    x: FloatArray
    declined: set[tuple[int, int]] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def highs(self) -> Any:
        return self.solution.highs


def _option(params: PolicyParams, name: str, default: Any) -> Any:
    return params.options.get(name, default)


def _float_option(params: PolicyParams, name: str, default: float | None, lo: float, hi: float) -> float | None:
    raw = _option(params, name, default)
    if raw is None:
        return None
    try:
        val = float(raw)
    except (TypeError, ValueError):
        raise InputError("must be a number", field=f"policy.options.{name}", value=raw) from None
    if not lo <= val <= hi:
        raise InputError(f"must be in [{lo}, {hi}]", field=f"policy.options.{name}", value=raw)
    return val


def default_tier_values(world: World, tiers: int) -> tuple[FloatArray, FloatArray, pd.Series]:
    """Tier sizes, deaths averted per dose and product efficacy factors from the impact model
    (default impact parameters; see :func:`tier_arrays`)."""
    from dosewise.impact import tier_values

    return tier_arrays(world, tier_values(world, None, tiers=tiers))


def tier_arrays(world: World, tv: Any) -> tuple[FloatArray, FloatArray, pd.Series]:
    """A :class:`~dosewise.impact.TierValues` as the arrays :func:`solve_optimal` takes, in the
    order of ``world.participants``: tier sizes, deaths averted per dose, product factors.

    The impact model values one reference product (``tv.product``); other products are scaled
    by their efficacy against severe disease relative to it (catalogue figures).
    """
    order = pd.Index(tv.codes).get_indexer(world.participants.index)
    if (order < 0).any():
        missing = world.participants.index[order < 0].tolist()[:10]
        raise AllocationError(f"the impact model gives no tier values for {missing}")
    eff = world.products["efficacy_severe"].astype(np.float64)
    ref = float(eff.get(tv.product, np.nan))
    factor = eff / ref if np.isfinite(ref) and ref > 0 else pd.Series(1.0, index=world.products.index)
    return (
        np.asarray(tv.sizes, dtype=np.float64)[order],
        np.asarray(tv.deaths_averted_per_dose, dtype=np.float64)[order],
        factor,
    )


def floor_capacity_problems(data: ProblemData) -> list[str]:
    """Participants whose equity floor exceeds what they could receive even with no competition."""
    lo, count = week_ranges(data)
    per_lot = np.minimum(data.budget[None, :].astype(np.float64), data.capacity[:, None] * count)
    per_lot = np.minimum(per_lot, data.tier_people.sum(axis=1)[:, None] * data.course[None, :])
    per_lot = np.where(count > 0, per_lot, 0.0)
    reach = per_lot.sum(axis=1)
    weeks_reachable = np.zeros((data.n, data.weeks), dtype=np.bool_)
    w = np.arange(data.weeks)
    for lot in range(data.n_lots):  # L is small (lots), the work inside is vectorised over participants
        weeks_reachable |= (w[None, :] >= lo[:, lot, None]) & (w[None, :] < lo[:, lot, None] + count[:, lot, None])
    cap_total = np.where(np.isinf(data.capacity), np.inf, data.capacity * weeks_reachable.sum(axis=1))
    reach = np.minimum.reduce([reach, cap_total, data.share_cap])
    bad = np.flatnonzero(data.floor > reach + 1e-6)
    names = data.participants if len(data.participants) else pd.Index(range(data.n))
    return [f"{names[int(i)]} (floor {data.floor[i]:,.0f} doses, at most {reach[i]:,.0f} reachable)" for i in bad]


def solve_optimal(
    world: World,
    params: PolicyParams,
    *,
    tier_sizes: FloatArray | None = None,
    deaths_averted_per_dose: FloatArray | None = None,
    product_factor: pd.Series | None = None,
    entitlement: FloatArray | None = None,
    impact: Any = None,
    candidates: Mapping[str, Allocation] | None = None,
    context: Any = None,
    curves: Any = None,
) -> OptimalState:
    """Build, solve and assign the optimal allocation; keep the solver for re-solves.

    By default the values come from the impact model itself (:mod:`dosewise.optimize.model`):
    local values per participant × lot simulated under the world's epidemic settings (the
    scenario's ``epidemic:`` section, or ``impact`` = an :class:`~dosewise.epidemic.EpidemicSettings`),
    re-linearised in a trust region until the simulated outcome stops improving; ``candidates``
    are other allocations (default: pro rata) the steps start from the best of, so the result is
    never worse than them in simulation (``options.max_iter``: LP solves, default 8). Passing ``tier_sizes`` and
    ``deaths_averted_per_dose`` ((n, tiers), oldest first), or ``options.values: tiers``, uses the
    weekly tier LP instead (marginal values at 1 % coverage, see :mod:`dosewise.impact.tiers`).
    ``entitlement`` (doses per participant) defaults to the ``covax-pro-rata`` allocation.
    """
    legacy = (tier_sizes is not None and deaths_averted_per_dose is not None) or _option(
        params, "values", "model") == "tiers"
    if not legacy:
        return _solve_model_optimal(world, params, entitlement=entitlement, impact=impact, candidates=candidates,
                                    context=context, curves=curves)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    tiers = int(_option(params, "tiers", DEFAULT_TIERS))
    if tier_sizes is None or deaths_averted_per_dose is None:
        tier_sizes, deaths_averted_per_dose, pf = default_tier_values(world, tiers)
        product_factor = product_factor if product_factor is not None else pf
    timings["tier_values"] = time.perf_counter() - t0

    floor_share, floor, entitlement = _floor(world, params, entitlement)
    start_raw = _option(params, "start", None)
    start = dt.date.fromisoformat(str(start_raw)) if start_raw is not None else None
    t1 = time.perf_counter()
    from dosewise.policies.pro_rata import with_policy_caps

    data = problem_from_world(
        with_policy_caps(world, params),
        tier_sizes=tier_sizes,
        deaths_averted_per_dose=deaths_averted_per_dose,
        product_factor_by_product=product_factor,
        weeks=int(_option(params, "weeks", DEFAULT_WEEKS)),
        late_discount=_float_option(params, "late_discount", DEFAULT_LATE_DISCOUNT, 0.0, 0.999) or 0.0,
        buffer=params.buffer,
        floor_doses=floor,
        max_share=_float_option(params, "max_share", None, 1e-9, 1.0),
        start=start,
    )
    if floor is not None:
        _check_floor(data, floor_share)
    mip = bool(_option(params, "mip", False))
    lp = build_lp(data, mip=mip)
    timings["build"] = time.perf_counter() - t1
    threads = _option(params, "threads", None)
    time_limit = _float_option(params, "time_limit", None, 0.0, 1e7)
    solution = solve_lp(
        lp,
        threads=None if threads is None else int(threads),
        time_limit=time_limit,
        solver=str(_option(params, "solver", "auto")),
    )
    timings["solve"] = solution.seconds
    t2 = time.perf_counter()
    allocation = assign_solution(
        world,
        lp,
        solution,
        policy=POLICY_NAME,
        params=params.model_dump(),
        round_units=params.round_to_shipping_unit,
        notes={"equity_floor": floor_share, "entitlement": entitlement, "start": data.start,
               "solver": solution.solver, "values": "tier values at 1% coverage"},
    )
    timings["assign"] = time.perf_counter() - t2
    allocation.notes["timings"] = timings
    return OptimalState(
        world=world,
        params=params,
        data=data,
        lp=lp,
        solution=solution,
        allocation=allocation,
        x=solution.x.copy(),
        timings=timings,
    )


def _floor(
    world: World, params: PolicyParams, entitlement: FloatArray | None
) -> tuple[float, FloatArray | None, FloatArray | None]:
    floor_share = _float_option(params, "equity_floor", 0.0, 0.0, 10.0) or 0.0
    floor = None
    if floor_share > 0:
        if entitlement is None:
            from dosewise.policies.pro_rata import allocate_pro_rata

            entitlement = allocate_pro_rata(world, params).totals().astype(np.float64)
        floor = floor_share * np.asarray(entitlement, dtype=np.float64)
    return floor_share, floor, entitlement


def _check_floor(data: ProblemData, floor_share: float) -> None:
    problems = floor_capacity_problems(data)
    if problems:
        raise AllocationError(
            f"equity floor {floor_share:.0%} of the pro-rata entitlement is infeasible for "
            + "; ".join(problems[:10])
            + (f" and {len(problems) - 10} more" if len(problems) > 10 else "")
            + " (lot availability, shelf life on arrival, capacity, acceptance or share cap); "
            "lower policy.options.equity_floor"
        )


def model_context(world: World, impact: Any = None, *, setup: Any = None, baseline: Any = None) -> Any:
    """The shared simulation context of the model-based optimum for ``world`` (epidemic settings
    from ``impact``, else the world's scenario)."""
    from dosewise.impact.settings import impact_setting
    from dosewise.optimize.model import make_context

    params, start = impact_setting(world, impact)
    return make_context(world, params, start, setup=setup, baseline=baseline)


def _solve_model_optimal(
    world: World,
    params: PolicyParams,
    *,
    entitlement: FloatArray | None,
    impact: Any,
    candidates: Mapping[str, Allocation] | None,
    context: Any,
    curves: Any,
) -> OptimalState:
    from dosewise.optimize.model import solve_model

    t0 = time.perf_counter()
    if context is None:
        from dosewise.policies.pro_rata import with_policy_caps

        context = model_context(with_policy_caps(world, params), impact)
    ctx = context
    floor_share, floor, entitlement = _floor(world, params, entitlement)
    if candidates is None:
        from dosewise.policies.pro_rata import allocate_pro_rata
        from dosewise.scenario import policy_params

        candidates = {"covax-pro-rata": allocate_pro_rata(world, policy_params(params, name="covax-pro-rata"))}
    if floor is not None:  # a candidate must keep the floor
        candidates = {k: a for k, a in candidates.items()
                      if (a.totals().astype(np.float64) >= floor - _unit_tolerance(world)).all()}
    max_share = _float_option(params, "max_share", None, 1e-9, 1.0)
    budget = float(world.lots["doses"].sum()) * (1.0 - params.buffer)
    share_cap = np.full(world.n, np.inf) if max_share is None else np.full(world.n, max_share * budget)
    if max_share is not None:
        candidates = {k: a for k, a in candidates.items() if (a.totals() <= share_cap + 1e-6).all()}
    res = solve_model(
        ctx,
        floor=floor,
        share_cap=share_cap,
        buffer=params.buffer,
        round_units=params.round_to_shipping_unit,
        policy=POLICY_NAME,
        params=params.model_dump(),
        notes={"equity_floor": floor_share, "entitlement": entitlement, "start": ctx.start,
               "values": "impact-model value curves, re-linearised"},
        curves=curves,
        max_iter=int(_option(params, "max_iter", 8)),
        candidates=candidates,
        solver=str(_option(params, "solver", "auto")),
    )
    timings = {"total": time.perf_counter() - t0, **res.allocation.notes["model_seconds"]}
    res.allocation.notes["timings"] = timings
    res.allocation.notes["curves"] = res.curves
    return OptimalState(
        world=world,
        params=params,
        data=res.data,
        lp=res.lp,
        solution=res.solution,
        allocation=res.allocation,
        x=res.solution.x.copy(),
        timings=timings,
    )


def _unit_tolerance(world: World) -> float:
    units = world.products.loc[list(world.lots["product"].astype(str)), "shipping_unit"]
    return float(units.max()) if len(units) else 0.0


def allocate_optimal(world: World, params: PolicyParams) -> Allocation:
    """The ``optimal`` policy (see the module docstring); use :func:`solve_optimal` to keep the solver."""
    return solve_optimal(world, params).allocation
