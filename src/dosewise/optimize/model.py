"""The ``optimal`` policy on values from the impact model itself, re-linearised until the simulated
outcome stops improving.

What the simulation does with an allocation decides what the LP must value: each participant's
doses arrive with their lots, are given at its capacity (or the epidemic's roll-out setting),
and go to people in the epidemic's priority order (oldest first by default). So the outcome of
an allocation depends, per participant, on how many people start a course and on the mix of
lots they come from. Participants do not infect each other in the model, so:

1. **Value curves.** For each participant ``i``, ``f_i(P)`` = deaths averted when ``P`` people
   start a course, with doses drawn from the lots in the proportions ``mix[i, l]`` (at first the
   lots' supply among those ``i`` can use; later the current solution's own mix). ``f_i`` is
   simulated at several coverage levels for all participants in **one** engine run, the levels
   stacked along the participant axis (:func:`simulate_points`).
2. **Concave, piecewise linear.** The upper concave envelope of each participant's points
   (vectorised, :func:`concave_envelope`) gives segments of people with falling value per person;
   these are the LP's tiers (``tier_people``, ``value``), so marginal value falls as coverage rises.
   A dose of lot ``l`` is worth the segment's value per person ÷ the lot's doses per course ×
   ``lot_factor[i, l]``: the deaths averted by a step of courses from lot ``l`` alone over those
   averted by the same step along the mix, simulated at the current point (:func:`measure`;
   where the mix's step averts almost nothing, the factors measured at zero coverage stand in),
   capped at :data:`MAX_LOT_FACTOR`.
3. **LP.** Participant × lot × segment (capacity and expiry are in the curves, through the
   simulated logistics), lot budgets after the buffer, equity floor and share cap as in the
   weekly LP; solved by HiGHS and rounded to shipping units.
4. **Re-linearise.** The solution is simulated; new points are added around each participant's
   solution (×0.85, ×1, ×1.15 of its people, and the 15 % step with each lot alone) with the
   solution's lot mix, all in one engine run, and the LP is
   solved again, until the simulated deaths averted improve by less than ``tol`` (default
   0.05 %) or ``max_iter`` is reached. The best solution *in simulation* is kept; its LP
   estimate minus its simulated value is the reported gap.
5. **Candidates.** When the caller passes other allocations (``compare`` passes every policy it
   runs), one more round adds points at each candidate's per-participant coverage; if a
   candidate still simulates better than every LP solution, the policy returns that
   allocation and says so in ``notes["chosen"]`` (otherwise ``"lp"``). The LP is the
   optimiser; the candidates are a guard, reported, never silent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.errors import AllocationError
from dosewise.optimize.assign import assign_solution
from dosewise.optimize.build import LinearProgram, build_lp
from dosewise.optimize.problem import ProblemData
from dosewise.optimize.solve import Solution, solve_lp
from dosewise.world import World

FloatArray = npt.NDArray[np.float64]

GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0)
"""First coverage levels (share of each participant's people who may be vaccinated)."""
LOCAL = (0.85, 1.15)
MAX_LOT_FACTOR = 3.0
"""Points added around each participant's solution at every re-linearisation."""


@dataclass
class Curves:
    """Simulated points of every participant's value curve: ``people`` and ``averted``, (n, K)."""

    people: FloatArray
    averted: FloatArray

    def add(self, people: FloatArray, averted: FloatArray) -> None:
        self.people = np.concatenate([self.people, people], axis=1)
        self.averted = np.concatenate([self.averted, averted], axis=1)


def concave_envelope(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Upper concave envelope of points ``(x, y)`` per row, (n, K) each, nondecreasing.

    Returns segment lengths and slopes, (n, K - 1), slopes falling along each row (zero-length
    segments pad rows with fewer vertices). Vectorised over rows: points below the chord of
    their kept neighbours are dropped, all at once, until none is.
    """
    order = np.argsort(x, axis=1, kind="stable")
    xs = np.take_along_axis(x, order, axis=1)
    ys = np.maximum.accumulate(np.take_along_axis(y, order, axis=1), axis=1)
    n, k = xs.shape
    keep = np.ones((n, k), dtype=np.bool_)
    # duplicate x: keep the last (largest y after the running maximum)
    keep[:, :-1] &= xs[:, 1:] > xs[:, :-1] + 1e-9 * np.maximum(np.abs(xs[:, 1:]), 1.0)
    keep[:, -1] = True
    keep[:, 0] = True
    idx = np.broadcast_to(np.arange(k), (n, k))
    for _ in range(k):
        prev = np.maximum.accumulate(np.where(keep, idx, -1), axis=1)
        prev = np.concatenate([np.full((n, 1), -1), prev[:, :-1]], axis=1)
        nxt = np.minimum.accumulate(np.where(keep, idx, k)[:, ::-1], axis=1)[:, ::-1]
        nxt = np.concatenate([nxt[:, 1:], np.full((n, 1), k)], axis=1)
        inner = keep & (prev >= 0) & (nxt < k)
        p = np.clip(prev, 0, k - 1)
        q = np.clip(nxt, 0, k - 1)
        xp, yp = np.take_along_axis(xs, p, 1), np.take_along_axis(ys, p, 1)
        xq, yq = np.take_along_axis(xs, q, 1), np.take_along_axis(ys, q, 1)
        span = np.where(xq > xp, xq - xp, 1.0)
        chord = yp + (yq - yp) * (xs - xp) / span
        below = inner & (ys <= chord + 1e-12 * np.maximum(np.abs(chord), 1.0))
        if not below.any():
            break
        keep &= ~below
    # compact the kept vertices to the left of each row
    pos = np.argsort(~keep, axis=1, kind="stable")
    vx = np.take_along_axis(xs, pos, 1)
    vy = np.take_along_axis(ys, pos, 1)
    count = keep.sum(axis=1)
    valid = np.arange(k)[None, :] < count[:, None]
    vx = np.where(valid, vx, np.take_along_axis(vx, (count - 1)[:, None], 1))
    vy = np.where(valid, vy, np.take_along_axis(vy, (count - 1)[:, None], 1))
    length = np.diff(vx, axis=1)
    rise = np.diff(vy, axis=1)
    slope = np.divide(rise, length, out=np.zeros_like(rise), where=length > 0)
    return np.clip(length, 0.0, None), np.clip(slope, 0.0, None)


def envelope_value(length: FloatArray, slope: FloatArray, people: FloatArray) -> FloatArray:
    """The envelope at ``people`` (n,): filled segments, in order."""
    before = np.cumsum(length, axis=1) - length
    filled = np.clip(people[:, None] - before, 0.0, length)
    return np.asarray((filled * slope).sum(axis=1), dtype=np.float64)


@dataclass
class ModelContext:
    """What every simulation of one world shares: setup, no-vaccine run, lot days, limits."""

    world: World
    params: Any  # ImpactParams
    start: Any
    setup: Any
    baseline: Any
    course: FloatArray  # (L,)
    eff: FloatArray  # (L,) efficacy against death
    arrive: npt.NDArray[np.int64]  # (n, L)
    e_day: npt.NDArray[np.int64]  # (L,)
    limit: FloatArray  # (n,) people who may be vaccinated
    deliverable: npt.NDArray[np.bool_]  # (n, L)
    baseline_deaths: FloatArray  # (n,)
    seconds: dict[str, float] = field(default_factory=dict)
    runs: int = 0
    first_slope: FloatArray | None = None
    """(n,) deaths averted per person of the first step along the initial mix (set by :func:`measure`)."""

    @property
    def n(self) -> int:
        return self.world.n


def make_context(world: World, params: Any, start: Any, setup: Any = None, baseline: Any = None) -> ModelContext:
    from dosewise.impact.engine import prepare, product_vaccines, simulate

    setup = setup or prepare(world, params)
    baseline = baseline or simulate(setup)
    lots = world.lots
    t0, a_day, e_day = world.lot_days(start)  # days from the start, on the world's time axis
    parts = world.participants
    lead = parts["lead_time_days"].to_numpy(dtype=np.int64)
    shelf = parts["min_shelf_life_days"].to_numpy(dtype=np.int64)
    arrive = np.maximum(a_day[None, :] + lead[:, None], 0).astype(np.int64)
    deliverable = world.usable() & (arrive + shelf[:, None] <= e_day[None, :]) & (arrive < params.days)
    prods = list(lots["product"].astype(str))
    uniq = list(dict.fromkeys(prods))
    vac = product_vaccines(world, uniq, np.zeros((1, len(uniq), 1)), params)
    eff = np.array([vac.e_sev[uniq.index(p)] for p in prods], dtype=np.float64)
    course = world.products.loc[prods, "doses_per_course"].to_numpy(dtype=np.float64)
    pop = world.population
    cap_share = parts["coverage_cap"].to_numpy(dtype=np.float64)
    limit = np.where(np.isnan(cap_share), 1.0, cap_share) * pop
    uptake = params.uptake_by_band()
    if uptake is not None:
        limit = np.minimum(limit, (setup.pop * uptake[None, :]).sum(axis=1))
    return ModelContext(world, params, t0, setup, baseline, course, eff, arrive, e_day.astype(np.int64), limit,
                        deliverable,
                        baseline.deaths[-1].sum(axis=1))


def _capacity(ctx: ModelContext, doses: FloatArray) -> FloatArray:
    """Doses a day per stacked row (P, n) for allocations ``doses`` (P, n, L)."""
    p = ctx.params
    cap = np.broadcast_to(ctx.world.participants["capacity_per_week"].to_numpy(dtype=np.float64) / 7.0,
                          doses.shape[:2]).copy()
    if p.rollout_days is not None or p.daily_doses_per_100 is not None:
        cap[:] = np.inf
        if p.rollout_days is not None:
            cap = np.minimum(cap, doses.sum(axis=2) / float(p.rollout_days))
        if p.daily_doses_per_100 is not None:
            cap = np.minimum(cap, ctx.world.population[None, :] * p.daily_doses_per_100 / 100.0)
    return cap


def simulate_points(ctx: ModelContext, people: FloatArray, mix: FloatArray) -> FloatArray:
    """Deaths averted per participant, (P, n), when ``people`` (P, n) start a course with doses
    from the lots in proportions ``mix`` (n, L) of people; one engine run for all P × n."""
    return simulate_doses(ctx, people[:, :, None] * mix[None, :, :] * ctx.course[None, None, :])


def simulate_doses(ctx: ModelContext, doses: FloatArray) -> FloatArray:
    """Deaths averted per participant, (P, n), for allocations ``doses`` (P, n, L); one engine run."""
    from dosewise.impact.engine import product_vaccines, simulate
    from dosewise.impact.vaccination import lot_schedule

    t = time.perf_counter()
    n_pts, n = doses.shape[:2]
    days = ctx.params.days
    cap = _capacity(ctx, doses)
    per_lot, _ = lot_schedule(
        doses.reshape(n_pts * n, -1), np.tile(ctx.arrive, (n_pts, 1)), ctx.e_day, cap.reshape(-1), days
    )
    prods = list(ctx.world.lots["product"].astype(str))
    uniq = list(dict.fromkeys(prods))
    by_prod = np.zeros((n_pts * n, len(uniq), days))
    for j, pid in enumerate(prods):
        by_prod[:, uniq.index(pid)] += per_lot[:, j]
    stacked = ctx.setup.subset(np.tile(np.arange(n), n_pts))
    vac = product_vaccines(ctx.world, uniq, by_prod, ctx.params)
    traj = simulate(stacked, vac)
    deaths = traj.deaths[-1].sum(axis=1).reshape(n_pts, n)
    ctx.runs += 1
    ctx.seconds["simulate_points"] = ctx.seconds.get("simulate_points", 0.0) + time.perf_counter() - t
    return np.asarray(ctx.baseline_deaths[None, :] - deaths, dtype=np.float64)


def lot_factor(ctx: ModelContext, mix: FloatArray) -> FloatArray:
    """(n, L): value of a course from lot l relative to one from the mix.

    Efficacy against death × the share of the no-vaccine run's deaths that occur after the
    lot's protection could start (arrival + the delay to protection), normalised so that the
    mix itself has factor 1."""
    deaths = ctx.baseline.deaths.sum(axis=2)  # (days + 1, n)
    total = deaths[-1]
    delay = round(ctx.params.delay_to_protection_days)
    day = np.clip(ctx.arrive + delay, 0, deaths.shape[0] - 1)
    remaining = total[:, None] - np.take_along_axis(deaths.T, day, axis=1)
    share = np.divide(remaining, total[:, None], out=np.ones_like(remaining), where=total[:, None] > 0)
    raw = ctx.eff[None, :] * np.maximum(share, 1e-6)
    norm = (mix * raw).sum(axis=1, keepdims=True)
    factor = np.divide(raw, norm, out=np.ones_like(raw), where=norm > 0)
    # a first-order correction only: far from the mix (a lot arriving long before or after the
    # mix's doses) it is not trusted beyond a factor of MAX_LOT_FACTOR; the re-linearisation then
    # moves the mix toward the lots the LP chooses, where the factor is exact
    return np.asarray(np.clip(factor, 0.0, MAX_LOT_FACTOR), dtype=np.float64)


def measure(ctx: ModelContext, people: FloatArray, mix: FloatArray, *, local: bool = True,
            fallback: FloatArray | None = None) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Simulate, in one engine run, the points around ``people`` (n,) with lot ``mix`` that the
    next LP needs: the local curve points (×0.85, ×1, ×1.15; or, at zero, a step of 2 % of the
    people who may be vaccinated) and the same step taken with each lot alone.

    Returns (curve people (n, k), curve deaths averted (n, k), lot factors (n, L)): a lot's factor
    is its deaths averted per course over the mix's along the same step, measured, not assumed.
    Where the mix's step averts too little for the ratio to mean anything (less than 5 % of the
    first step's value per person: capacity or the epidemic's end saturate it), ``fallback`` (the
    factors measured at zero coverage) or else the heuristic :func:`lot_factor` stands in."""
    n, n_lots = mix.shape
    zero = people <= 0
    step = np.where(zero, 0.02 * ctx.limit, (LOCAL[1] - 1.0) * people)
    base = np.where(zero, 0.0, people)
    pts = [base + step] if not local else [np.minimum(f * base, ctx.limit) for f in (LOCAL[0], 1.0)] + [base + step]
    doses = [p[:, None] * mix * ctx.course[None, :] for p in pts]
    base_doses = base[:, None] * mix * ctx.course[None, :]
    for lot in range(n_lots):
        bump = base_doses.copy()
        bump[:, lot] += np.where(ctx.deliverable[:, lot], step, 0.0) * ctx.course[lot]
        doses.append(bump)
    averted = simulate_doses(ctx, np.stack(doses))
    n_curve = len(pts)
    f_base = averted[n_curve - 2] if local else np.zeros(n)
    f_mix = averted[n_curve - 1] - f_base
    f_lot = averted[n_curve:].T - f_base[:, None]  # (n, L)
    per_person = np.divide(f_mix, step, out=np.zeros(n), where=step > 0)
    first = ctx.first_slope if ctx.first_slope is not None else per_person
    ok = (f_mix > 0) & (per_person >= 0.05 * first)
    measured = np.divide(f_lot, f_mix[:, None], out=np.zeros_like(f_lot), where=ok[:, None])
    factor = np.where(ok[:, None], measured, lot_factor(ctx, mix) if fallback is None else fallback)
    if ctx.first_slope is None:
        ctx.first_slope = per_person
    factor = np.where(ctx.deliverable, np.clip(factor, 0.0, MAX_LOT_FACTOR), 0.0)
    return np.stack(pts, axis=1), averted[:n_curve].T, np.asarray(factor, dtype=np.float64)


def initial_mix(ctx: ModelContext) -> FloatArray:
    """Lots in proportion to their supply in courses, among those each participant can receive."""
    budget = ctx.world.lots["doses"].to_numpy(dtype=np.float64) / ctx.course
    w = np.where(ctx.deliverable, budget[None, :], 0.0)
    s = w.sum(axis=1, keepdims=True)
    return np.asarray(np.divide(w, s, out=np.zeros_like(w), where=s > 0), dtype=np.float64)


def people_and_mix(ctx: ModelContext, doses: FloatArray, old_mix: FloatArray) -> tuple[FloatArray, FloatArray]:
    """People starting a course per participant, and their lot mix, from doses (n, L)."""
    courses = doses / ctx.course[None, :]
    people = courses.sum(axis=1)
    mix = np.where(people[:, None] > 0, courses / np.where(people > 0, people, 1.0)[:, None], old_mix)
    return people, mix


def build_problem(
    ctx: ModelContext, curves: Curves, mix: FloatArray, *, floor: FloatArray | None, share_cap: FloatArray,
    buffer: float, factor: FloatArray | None = None,
) -> ProblemData:
    length, slope = concave_envelope(curves.people, curves.averted)
    # keep segments with room; a participant with none gets one empty segment
    world = ctx.world
    lots = world.lots
    supply = lots["doses"].to_numpy(dtype=np.int64)
    buf = np.floor(buffer * supply + 0.5).astype(np.int64)
    usable = ctx.deliverable
    n, L = usable.shape
    prods = world.products.loc[list(lots["product"].astype(str))]
    return ProblemData(
        usable=usable,
        first_week=np.zeros((n, L), dtype=np.int64),
        last_week=np.zeros((n, L), dtype=np.int64),
        value=slope,
        product_factor=1.0 / ctx.course,
        discount=np.ones(1),
        budget=supply - buf,
        course=ctx.course,
        unit=prods["shipping_unit"].to_numpy(dtype=np.int64),
        capacity=np.full(n, np.inf),
        tier_people=length,
        floor=np.zeros(n) if floor is None else floor,
        share_cap=share_cap,
        participants=world.participants.index,
        lots=lots.index,
        lot_factor=lot_factor(ctx, mix) if factor is None else factor,
        start=ctx.start,
        meta={"buffer": buf, "values": "impact-model curves"},
    )


@dataclass
class ModelResult:
    allocation: Allocation
    lp: LinearProgram
    solution: Solution
    data: ProblemData
    curves: Curves
    mix: FloatArray
    history: list[dict[str, float]]
    chosen: str = "lp"


def simulate_allocation(ctx: ModelContext, alloc: Allocation) -> float:
    from dosewise.impact.outcomes import run_impact

    t = time.perf_counter()
    res = run_impact(ctx.world, alloc, ctx.params, start=ctx.start, setup=ctx.setup, baseline=ctx.baseline)
    ctx.seconds["simulate_solutions"] = ctx.seconds.get("simulate_solutions", 0.0) + time.perf_counter() - t
    return float(res.baseline.deaths[-1].sum() - res.vaccinated.deaths[-1].sum())


def solve_model(
    ctx: ModelContext,
    *,
    floor: FloatArray | None = None,
    share_cap: FloatArray | None = None,
    buffer: float = 0.0,
    round_units: bool = True,
    policy: str = "optimal",
    params: dict[str, Any] | None = None,
    notes: dict[str, Any] | None = None,
    curves: Curves | None = None,
    max_iter: int = 6,
    tol: float = 5e-4,
    candidates: Mapping[str, Allocation] | None = None,
    solver: str = "auto",
) -> ModelResult:
    """Re-linearised model-based optimum (see the module docstring)."""
    t_start = time.perf_counter()
    n = ctx.n
    share_cap = np.full(n, np.inf) if share_cap is None else share_cap
    mix = initial_mix(ctx)
    if curves is None:
        grid = np.asarray(GRID)[:, None] * ctx.limit[None, :]  # (K, n), first row zero
        averted = simulate_points(ctx, grid[1:], mix)
        curves = Curves(grid.T.copy(), np.concatenate([np.zeros((n, 1)), averted.T], axis=1))
    pts, vals, factor = measure(ctx, np.zeros(n), mix, local=False)
    factor0 = factor
    curves.add(pts, vals)
    history: list[dict[str, float]] = []
    best: tuple[float, Allocation, LinearProgram, Solution, ProblemData, FloatArray] | None = None

    def lp_round() -> tuple[float, Allocation, LinearProgram, Solution, ProblemData, FloatArray]:
        data = build_problem(ctx, curves, mix, floor=floor, share_cap=share_cap, buffer=buffer, factor=factor)
        lp = build_lp(data)
        sol = solve_lp(lp, solver=solver)
        alloc = assign_solution(ctx.world, lp, sol, policy=policy, params=params or {}, round_units=round_units,
                                notes=dict(notes or {}))
        sim = simulate_allocation(ctx, alloc)
        est = float(alloc.notes["objective_rounded"])
        history.append({"iteration": float(len(history) + 1), "lp_estimate": est, "simulated": sim,
                        "gap_share": (est - sim) / sim if sim else float("nan"),
                        "points": float(curves.people.shape[1])})
        return sim, alloc, lp, sol, data, mix.copy()

    for it in range(max_iter):
        cur = lp_round()
        improved = best is None or cur[0] > best[0] * (1.0 + tol)
        if best is None or cur[0] > best[0]:
            best = cur
        if not improved and it > 0:
            break
        # re-linearise around this solution, with its own lot mix
        people, mix = people_and_mix(ctx, cur[1].doses.astype(np.float64), mix)
        pts, vals, factor = measure(ctx, people, mix, fallback=factor0)
        curves.add(pts, vals)
    assert best is not None
    chosen = "lp"
    if candidates:
        sims = {name: simulate_allocation(ctx, a) for name, a in candidates.items()}
        name = max(sims, key=lambda k: sims[k])
        if sims[name] > best[0]:
            # add the candidate's coverage to the curves and solve once more from there
            people, cmix = people_and_mix(ctx, candidates[name].doses.astype(np.float64), mix)
            mix = cmix
            pts, vals, factor = measure(ctx, people, mix, fallback=factor0)
            curves.add(pts, vals)
            cur = lp_round()
            if cur[0] > best[0]:
                best = cur
            if sims[name] > best[0]:
                chosen = name
                cand = candidates[name]
                alloc = Allocation(policy=policy, participants=cand.participants, lots=cand.lots, doses=cand.doses,
                                   buffer=cand.buffer, remainder=cand.remainder, params=params or {},
                                   notes={**dict(notes or {}), "chosen": name})
                data = best[4]
                est = float(envelope_value(*concave_envelope(curves.people, curves.averted),
                                           people_and_mix(ctx, cand.doses.astype(np.float64), mix)[0]).sum())
                alloc.notes["objective_rounded"] = est
                alloc.notes["objective_lp"] = est
                best = (sims[name], alloc, best[2], best[3], data, cmix)
    sim, alloc, lp, sol, data, mix = best
    alloc.notes.setdefault("chosen", chosen)
    alloc.notes["relinearisation"] = pd.DataFrame(history)
    alloc.notes["iterations"] = len(history)
    alloc.notes["simulated_deaths_averted"] = sim
    est = float(alloc.notes["objective_rounded"])
    alloc.notes["lp_gap_share"] = (est - sim) / sim if sim else float("nan")
    alloc.notes["model_seconds"] = {**ctx.seconds, "total": time.perf_counter() - t_start}
    alloc.notes["engine_runs"] = ctx.runs
    if sim < 0:
        raise AllocationError("the impact model gives negative deaths averted for the optimal allocation")
    return ModelResult(alloc, lp, sol, data, curves, mix, history, chosen)
