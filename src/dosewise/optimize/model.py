"""The ``optimal`` policy on values from the impact model itself, re-linearised until the simulated
outcome stops improving.

What the simulation does with an allocation decides what the LP must value: each participant's
doses arrive with their lots, are given at its capacity (or the epidemic's roll-out setting),
earliest expiry first, and go to people in the epidemic's priority order (oldest first by
default). So a participant's deaths averted depend on how many doses of *each lot* it gets: a
lot that arrives before the epidemic's peak is worth many times one that arrives after it, and
doses queue behind each other at the participant's capacity. Participants do not infect each
other in the model, so the outcome is a sum over participants of ``f_i(doses[i, :])``.

1. **Start.** The best, *in simulation*, of the ``candidates`` (``compare`` passes every policy
   it runs; the policy passes pro rata) and, when there are none, of a first LP on concave value
   curves along the supply mix (:func:`simulate_points`, :func:`concave_envelope`,
   :func:`build_problem`; with ``curve_start``). All starts are simulated in one engine run.
2. **Local values per participant × lot** (:class:`LocalModel`). Around the current allocation
   ``D``, each (participant, lot) pair is simulated one step up and one step down (``ρ`` times
   its doses, or its pro-rata share of the lot when it has none; all pairs stacked along the
   participant axis of **one** engine run, :func:`simulate_rows`). The slopes below and above
   ``D`` (deaths averted per dose, made concave) give each coordinate a piecewise-linear value;
   lots that cannot avert deaths in a participant (:data:`VALUE_SHARE`: arriving after its
   epidemic) are worth zero there and are not simulated.
3. **LP** (:func:`local_problem`): participant × lot × segment, lot budgets after the buffer,
   equity floor and share cap as in the weekly LP, every coordinate within ``[D − down,
   D + up]`` (the trust region); solved by HiGHS and rounded to shipping units.
4. **Simulate and re-linearise.** The LP's allocation is simulated (one run; the points around
   it in a second, when it is kept and the loop goes on). If it averts more deaths it becomes
   ``D`` and the region doubles (up to ``ρ = 1``); if not, the region shrinks to a quarter
   around the old ``D``. The loop stops when the simulated gain of a step after the first falls
   below ``tol`` (default 0.05 %), when the local model sees no gain in a small region, or after
   ``max_iter`` LP solves. Every step's LP estimate is the simulated value at ``D`` plus the
   model's change, so as the steps shrink the estimate converges to the simulation; each step's
   estimate, simulated value and gap are in ``notes["relinearisation"]``.
5. **Answer.** The best allocation in simulation: an LP step's (``notes["chosen"] == "lp"``,
   ``notes["start"]`` names where the steps began) or, when no step improved on it, the start
   candidate itself, named in ``notes["chosen"]``; never silent.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.allocation import Allocation
from dosewise.errors import AllocationError
from dosewise.impact.workers import ENV as ENGINE_WORKERS_ENV
from dosewise.impact.workers import engine_workers, worker_kind
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
    rows: int = 0
    """Engine runs and participant-scenarios simulated in them (for the benchmark)."""
    first_slope: FloatArray | None = None
    """(n,) deaths averted per person of the first step along the initial mix (set by :func:`measure`)."""
    end_day: npt.NDArray[np.int64] | None = None
    worth: npt.NDArray[np.bool_] | None = None
    """(n, L) lots that can avert deaths in each participant (:func:`valuable`); the others' doses
    are left out of the optimiser's simulations (not of the final one)."""
    workers: int | None = None
    """Processes the stacked engine runs may be split over (None: :func:`~dosewise.impact.workers.engine_workers`
    decides on first use; 1: this process only)."""
    pool: Executor | None = None
    """The worker processes (or threads), started on first use (:func:`_pool`) and stopped with the context."""

    @property
    def n(self) -> int:
        return self.world.n


def make_context(world: World, params: Any, start: Any, setup: Any = None, baseline: Any = None,
                 *, workers: int | None = None) -> ModelContext:
    """The shared context of the optimiser's simulations of ``world``.

    ``workers``: processes its stacked engine runs may be split over (default: ``$DOSEWISE_WORKERS``,
    else one per core; always 1 inside a worker process or off the main thread; see
    :func:`dosewise.impact.workers.engine_workers`). The results do not depend on it."""
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
                        baseline.deaths[-1].sum(axis=1), workers=None if workers is None else engine_workers(workers))


def simulate_points(ctx: ModelContext, people: FloatArray, mix: FloatArray) -> FloatArray:
    """Deaths averted per participant, (P, n), when ``people`` (P, n) start a course with doses
    from the lots in proportions ``mix`` (n, L) of people; one engine run for all P × n."""
    return simulate_doses(ctx, people[:, :, None] * mix[None, :, :] * ctx.course[None, None, :])


def simulate_doses(ctx: ModelContext, doses: FloatArray) -> FloatArray:
    """Deaths averted per participant, (P, n), for allocations ``doses`` (P, n, L); one engine run."""
    n_pts, n = doses.shape[:2]
    rows = np.tile(np.arange(n), n_pts)
    return simulate_rows(ctx, rows, doses.reshape(n_pts * n, -1)).reshape(n_pts, n)


def row_capacity(ctx: ModelContext, part: npt.NDArray[np.intp], doses: FloatArray) -> FloatArray:
    """Doses a day for stacked rows: participant ``part`` (R,) with allocation ``doses`` (R, L)."""
    p = ctx.params
    cap = ctx.world.participants["capacity_per_week"].to_numpy(dtype=np.float64)[part] / 7.0
    if p.rollout_days is not None or p.daily_doses_per_100 is not None:
        cap = np.full(part.shape, np.inf)
        if p.rollout_days is not None:
            cap = np.minimum(cap, doses.sum(axis=1) / float(p.rollout_days))
        if p.daily_doses_per_100 is not None:
            cap = np.minimum(cap, ctx.world.population[part] * p.daily_doses_per_100 / 100.0)
    return np.asarray(cap, dtype=np.float64)


def _end_day(ctx: ModelContext) -> npt.NDArray[np.int64]:
    """(n,) last day of the no-vaccine run with more than 1e-9 of the population newly infected."""
    if ctx.end_day is None:
        inf = ctx.baseline.infections.sum(axis=2)  # (days + 1, n)
        daily = np.diff(inf, axis=0) > 1e-9 * ctx.setup.pop.sum(axis=1)[None, :]
        last = daily.shape[0] - 1 - np.argmax(daily[::-1], axis=0)
        ctx.end_day = np.where(daily.any(axis=0), last, 0).astype(np.int64)
    return ctx.end_day


def simulate_rows(ctx: ModelContext, part: npt.NDArray[np.intp], doses: FloatArray) -> FloatArray:
    """Deaths averted (R,) by stacked rows: participant ``part[r]`` receiving ``doses[r]`` (L,);
    one engine run for all rows (rows are independent: participants do not infect each other),
    split over :attr:`ModelContext.workers` processes when it has more than a few blocks (the
    same numbers as in one process: see :func:`dosewise.impact.engine.simulate`)."""
    t = time.perf_counter()
    part = np.asarray(part, dtype=np.intp)
    if ctx.worth is not None:  # doses that cannot avert deaths are left out (see :data:`VALUE_SHARE`)
        doses = np.where(ctx.worth[part], doses, 0.0)
    # rows whose epidemics end together share engine blocks, so that blocks stop early together
    order = np.argsort(_end_day(ctx)[part], kind="stable")
    deaths = np.empty(part.size)
    parts = _split(ctx, order)
    pool = _pool(ctx, engine_workers(ctx.workers)) if len(parts) > 1 else None
    cpu: dict[int, float] = {}  # CPU seconds of this run by worker (process or thread)
    if pool is not None:
        try:
            if isinstance(pool, ThreadPoolExecutor):
                futures = [pool.submit(_timed_row_deaths, ctx, part[p], doses[p]) for p in parts]
            else:
                futures = [pool.submit(_row_deaths_in_worker, part[p], doses[p]) for p in parts]
            for p, fut in zip(parts, futures, strict=True):
                deaths[p], who, sec = fut.result()
                cpu[who] = cpu.get(who, 0.0) + sec
        except BrokenExecutor:  # a worker died (killed, out of memory): this process does the work
            close_pool(ctx)
            ctx.workers = 1
            pool = None
            cpu.clear()
    if pool is None:
        deaths[order], who, sec = _timed_row_deaths(ctx, part[order], doses[order])
        cpu[who] = sec
    # on an idle machine a run takes about as long as its busiest worker's CPU time
    ctx.seconds["engine_cpu"] = ctx.seconds.get("engine_cpu", 0.0) + sum(cpu.values())
    ctx.seconds["engine_cpu_busiest"] = ctx.seconds.get("engine_cpu_busiest", 0.0) + max(cpu.values())
    if pool is None or isinstance(pool, ThreadPoolExecutor):  # counted in this process's CPU time
        ctx.seconds["engine_cpu_here"] = ctx.seconds.get("engine_cpu_here", 0.0) + sum(cpu.values())
    ctx.runs += 1
    ctx.rows += int(part.size)
    ctx.seconds["simulate_points"] = ctx.seconds.get("simulate_points", 0.0) + time.perf_counter() - t
    return np.asarray(ctx.baseline_deaths[part] - deaths, dtype=np.float64)


def _row_deaths(ctx: ModelContext, part: npt.NDArray[np.intp], doses: FloatArray) -> FloatArray:
    """Deaths (R,) of stacked rows, in their order: one engine run in this process."""
    from dosewise.impact.engine import product_vaccines, simulate
    from dosewise.impact.vaccination import lot_schedule

    days = ctx.params.days
    per_lot, _ = lot_schedule(doses, ctx.arrive[part], ctx.e_day, row_capacity(ctx, part, doses), days)
    prods = list(ctx.world.lots["product"].astype(str))
    uniq = list(dict.fromkeys(prods))
    by_prod = np.zeros((part.size, len(uniq), days))
    for j, pid in enumerate(prods):
        by_prod[:, uniq.index(pid)] += per_lot[:, j]
    vac = product_vaccines(ctx.world, uniq, by_prod, ctx.params)
    traj = simulate(ctx.setup.subset(part), vac)
    return np.asarray(traj.deaths[-1].sum(axis=1), dtype=np.float64)


_FORKED: ModelContext | None = None
"""The context a worker process inherited when it was forked (set in the parent only while forking)."""


def _timed_row_deaths(ctx: ModelContext, part: npt.NDArray[np.intp], doses: FloatArray
                      ) -> tuple[FloatArray, int, float]:
    """:func:`_row_deaths`, with who ran it (process and thread) and the CPU seconds it took there."""
    c = time.thread_time()
    deaths = _row_deaths(ctx, part, doses)
    return deaths, hash((os.getpid(), threading.get_ident())), time.thread_time() - c


def _row_deaths_in_worker(part: npt.NDArray[np.intp], doses: FloatArray) -> tuple[FloatArray, int, float]:
    if _FORKED is None:  # pragma: no cover - a worker started without its context
        raise RuntimeError("engine worker has no model context")
    return _timed_row_deaths(_FORKED, part, doses)


def _worker_start() -> None:
    os.environ[ENGINE_WORKERS_ENV] = "1"  # nothing a worker starts may start processes of its own


MIN_TASK_ROWS = 32
"""Fewest rows worth sending to a worker (below this, a run stays in this process)."""


def _split(ctx: ModelContext, order: npt.NDArray[np.intp]) -> list[npt.NDArray[np.intp]]:
    """Positions of the rows (sorted by ``order``) for each worker task: blocks of rows (engine
    blocks, or smaller so that every task gets some) dealt round robin over twice as many tasks
    as workers, so each task has early- and late-ending blocks; one part (this process) with one
    worker or fewer than ``2 × MIN_TASK_ROWS`` rows."""
    from dosewise.impact.engine import Layout, block_size

    workers = engine_workers(ctx.workers)  # 1 off the main thread or inside a worker, whatever was asked
    if workers <= 1 or order.size < 2 * MIN_TASK_ROWS:
        return [order]
    tasks = min(2 * workers, order.size // MIN_TASK_ROWS)
    n_prod = len(dict.fromkeys(ctx.world.lots["product"].astype(str)))
    size = max(1, min(block_size(Layout(n_prod)), -(-order.size // tasks)))
    blocks = [order[lo : lo + size] for lo in range(0, order.size, size)]
    return [np.concatenate(blocks[k::tasks]) for k in range(tasks)]


def _pool(ctx: ModelContext, workers: int) -> Executor | None:
    """The context's ``workers`` processes, forked on first use (they inherit the context, so a
    task sends only its rows' participants and doses) and reused by every later run; threads
    instead with ``DOSEWISE_WORKER_KIND=threads`` (:func:`~dosewise.impact.workers.worker_kind`)."""
    global _FORKED
    if ctx.pool is None and workers > 1 and worker_kind() == "threads":
        ctx.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dosewise-engine")
        weakref.finalize(ctx, ctx.pool.shutdown, wait=False, cancel_futures=True)
    if ctx.pool is None and workers > 1:
        _end_day(ctx)  # everything the workers read is computed before they fork
        _FORKED = ctx
        try:
            with warnings.catch_warnings():  # Python ≥ 3.12 warns of fork with threads; workers use none
                warnings.simplefilter("ignore", DeprecationWarning)
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                           initializer=_worker_start)
                for fut in [pool.submit(os.getpid) for _ in range(workers)]:  # fork them all now
                    fut.result()
        except (OSError, BrokenExecutor):  # no processes to be had: this process does the work
            ctx.workers = 1
            return None
        finally:
            _FORKED = None
        ctx.pool = pool
        weakref.finalize(ctx, pool.shutdown, wait=False, cancel_futures=True)
    return ctx.pool


def close_pool(ctx: ModelContext) -> None:
    """Stop the context's worker processes or threads (also stopped when the context is collected)."""
    if ctx.pool is not None:
        ctx.pool.shutdown(wait=True, cancel_futures=True)
        ctx.pool = None


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
    worth = ctx.deliverable if ctx.worth is None else ctx.worth
    live = [lot for lot in range(n_lots) if worth[:, lot].any()]
    for lot in live:
        bump = base_doses.copy()
        bump[:, lot] += np.where(ctx.deliverable[:, lot], step, 0.0) * ctx.course[lot]
        doses.append(bump)
    averted = simulate_doses(ctx, np.stack(doses))
    n_curve = len(pts)
    f_base = averted[n_curve - 2] if local else np.zeros(n)
    f_mix = averted[n_curve - 1] - f_base
    f_lot = np.zeros((n, n_lots))
    f_lot[:, live] = averted[n_curve:].T - f_base[:, None]
    per_person = np.divide(f_mix, step, out=np.zeros(n), where=step > 0)
    first = ctx.first_slope if ctx.first_slope is not None else per_person
    ok = (f_mix > 0) & (per_person >= 0.05 * first)
    measured = np.divide(f_lot, f_mix[:, None], out=np.zeros_like(f_lot), where=ok[:, None])
    factor = np.where(ok[:, None], measured, lot_factor(ctx, mix) if fallback is None else fallback)
    if ctx.first_slope is None:
        ctx.first_slope = per_person
    factor = np.where(worth, np.clip(factor, 0.0, MAX_LOT_FACTOR), 0.0)
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
    history: list[dict[str, Any]]
    chosen: str = "lp"


def simulate_allocation(ctx: ModelContext, alloc: Allocation) -> float:
    from dosewise.impact.outcomes import run_impact

    t = time.perf_counter()
    res = run_impact(ctx.world, alloc, ctx.params, start=ctx.start, setup=ctx.setup, baseline=ctx.baseline)
    ctx.seconds["simulate_solutions"] = ctx.seconds.get("simulate_solutions", 0.0) + time.perf_counter() - t
    return float(res.baseline.deaths[-1].sum() - res.vaccinated.deaths[-1].sum())


VALUE_SHARE = 1e-4
"""A lot is worth nothing to a participant when less than this share of its no-vaccine deaths
occur after the lot could first protect anyone there (arrival + delay to protection, the dose
interval included): its doses there are not simulated and carry no value in the LP."""
RHO0, RHO_MAX, RHO_MIN, RHO_RETRY = 0.5, 1.0, 1.0 / 64, 0.5
"""Trust region of the local stage: first, largest and smallest step, as a share of each
participant's doses of a lot (or of its pro-rata share of the lot when it has none); when the
local model sees no gain, one more look in a region a quarter as large unless the region is
already at most ``RHO_RETRY``."""


def valuable(ctx: ModelContext) -> npt.NDArray[np.bool_]:
    """(n, L): lots that can still avert deaths in each participant (see :data:`VALUE_SHARE`)."""
    from dosewise.impact.engine import product_vaccines

    prods = list(ctx.world.lots["product"].astype(str))
    uniq = list(dict.fromkeys(prods))
    vac = product_vaccines(ctx.world, uniq, np.zeros((1, len(uniq), 1)), ctx.params)
    delay = np.array([vac.delay_days[uniq.index(p)] for p in prods], dtype=np.float64)
    deaths = ctx.baseline.deaths.sum(axis=2)  # (days + 1, n)
    total = deaths[-1]
    day = np.clip(ctx.arrive + np.round(delay).astype(np.int64)[None, :], 0, deaths.shape[0] - 1)
    remaining = total[:, None] - np.take_along_axis(deaths.T, day, axis=1)
    return np.asarray(ctx.deliverable & (remaining > VALUE_SHARE * total[:, None]), dtype=np.bool_)


def pro_rata_scale(ctx: ModelContext) -> FloatArray:
    """(n, L) each participant's population share of each lot among those who can receive it."""
    supply = ctx.world.lots["doses"].to_numpy(dtype=np.float64)
    pop = np.where(ctx.deliverable, ctx.world.population[:, None], 0.0)
    tot = pop.sum(axis=0, keepdims=True)
    return np.asarray(np.divide(pop, tot, out=np.zeros_like(pop), where=tot > 0) * supply[None, :], dtype=np.float64)


@dataclass
class LocalModel:
    """Deaths averted around an allocation ``doses`` (n, L), one lot at a time.

    For each participant ``i`` and lot ``l`` the simulation gives the deaths averted with
    ``doses[i, l] − down`` and ``doses[i, l] + up`` (other lots unchanged); the slopes per dose
    below and above the current doses, made concave (a single chord when the upper slope is the
    larger), define a piecewise-linear value of each coordinate. The LP may move each coordinate
    within ``[doses − down, doses + up]``, the trust region."""

    doses: FloatArray
    value: FloatArray  # (n,) simulated deaths averted at ``doses``
    down: FloatArray
    up: FloatArray
    s_down: FloatArray
    s_up: FloatArray

    def estimate(self, new: FloatArray) -> float:
        """The model's deaths averted for an allocation ``new`` (n, L)."""
        delta = new - self.doses
        change = np.where(delta < 0, self.s_down * delta, self.s_up * delta)
        return float(self.value.sum() + change.sum())


def local_rows(ctx: ModelContext, doses: FloatArray, rho: float, active: npt.NDArray[np.bool_],
               scale: FloatArray) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp], FloatArray]:
    """(down, up, participants (R,), doses (R, L)) of the points a :class:`LocalModel` needs:
    every active (participant, lot) one step up, and one step down where it has doses."""
    # lots that avert nothing may still move (at no value: floors and budgets may need them)
    up = np.where(ctx.deliverable, rho * np.maximum(doses, scale), 0.0)
    down = np.where(active, rho * doses, doses)
    ui, ul = np.nonzero(active & (up > 0))
    di, dl = np.nonzero(active & (down > 0))
    rows_up = doses[ui].copy()
    rows_up[np.arange(ui.size), ul] += up[ui, ul]
    rows_dn = doses[di].copy()
    rows_dn[np.arange(di.size), dl] -= down[di, dl]
    part = np.concatenate([ui, di]).astype(np.intp)
    return down, up, part, np.concatenate([rows_up, rows_dn], axis=0)


def local_model(doses: FloatArray, value: FloatArray, down: FloatArray, up: FloatArray,
                averted: FloatArray, active: npt.NDArray[np.bool_]) -> LocalModel:
    """The :class:`LocalModel` from the simulated points of :func:`local_rows` (same order)."""
    ui, ul = np.nonzero(active & (up > 0))
    di, dl = np.nonzero(active & (down > 0))
    f_up = np.zeros_like(doses)
    f_dn = np.zeros_like(doses)
    f_up[ui, ul] = averted[: ui.size]
    f_dn[di, dl] = averted[ui.size:]
    v = value[:, None]
    s_up = np.divide(f_up - v, up, out=np.zeros_like(up), where=up > 0)
    has_dn = active & (down > 0)
    s_dn = np.divide(v - f_dn, down, out=np.zeros_like(down), where=has_dn)
    s_dn = np.where(has_dn, s_dn, s_up)
    chord = np.divide(f_up - f_dn, up + down, out=np.zeros_like(up), where=(up + down) > 0)
    convex = has_dn & (up > 0) & (s_up > s_dn)
    s_up = np.where(convex, chord, s_up)
    s_dn = np.where(convex, chord, s_dn)
    s_up = np.where(active, np.clip(s_up, 0.0, None), 0.0)
    s_dn = np.where(active, np.clip(s_dn, 0.0, None), 0.0)
    return LocalModel(doses, value, down, up, s_dn, s_up)


def local_problem(ctx: ModelContext, lm: LocalModel, *, floor: FloatArray | None, share_cap: FloatArray,
                  buffer: float) -> LinearProgram:
    """The LP of one local step (its estimate of deaths averted: :meth:`LocalModel.estimate`).

    Tiers are (lot, segment): segment 0 is ``[0, doses − down]`` (kept: its columns' lower bound
    is their upper bound), 1 is ``[doses − down, doses]``, 2 is ``[doses, doses + up]``; a column
    exists only for its own lot's tiers."""
    from dosewise.optimize.variables import Variables

    world = ctx.world
    lots = world.lots
    n, L = lm.doses.shape
    supply = lots["doses"].to_numpy(dtype=np.int64)
    buf = np.floor(buffer * supply + 0.5).astype(np.int64)
    budget = (supply - buf).astype(np.float64)
    keep = np.clip(lm.doses - lm.down, 0.0, None)
    # the kept doses must fit the lots and share caps (a start from another policy may not)
    tot = keep.sum(axis=0)
    keep = keep * np.minimum(1.0, np.divide(budget, tot, out=np.ones_like(tot), where=tot > 0))[None, :]
    per = keep.sum(axis=1)
    keep = keep * np.minimum(1.0, np.divide(share_cap, per, out=np.ones_like(per), where=per > 0))[:, None]
    seg = np.stack([keep, lm.doses - keep, lm.up], axis=2)  # (n, L, 3) doses
    slope = np.stack([lm.s_down, lm.s_down, lm.s_up], axis=2)
    course = ctx.course
    prods = world.products.loc[list(lots["product"].astype(str))]
    data = ProblemData(
        usable=ctx.deliverable,
        first_week=np.zeros((n, L), dtype=np.int64),
        last_week=np.zeros((n, L), dtype=np.int64),
        value=(slope * course[None, :, None]).reshape(n, 3 * L),
        product_factor=1.0 / course,
        discount=np.ones(1),
        budget=supply - buf,
        course=course,
        unit=prods["shipping_unit"].to_numpy(dtype=np.int64),
        capacity=np.full(n, np.inf),
        tier_people=np.clip(seg / course[None, :, None], 0.0, None).reshape(n, 3 * L),
        floor=np.zeros(n) if floor is None else floor,
        share_cap=share_cap,
        participants=world.participants.index,
        lots=lots.index,
        start=ctx.start,
        meta={"buffer": buf, "values": "impact-model local values per lot", "tiers_per_lot": 3},
    )
    pi, pl = np.nonzero(ctx.deliverable)
    var = Variables(
        part=np.repeat(pi, 3).astype(np.int32),
        lot=np.repeat(pl, 3).astype(np.int32),
        week=np.zeros(3 * pi.size, dtype=np.int32),
        tier=(np.repeat(3 * pl, 3) + np.tile(np.arange(3), pi.size)).astype(np.int32),
    )
    lp = build_lp(data, var)
    first = var.tier % 3 == 0
    lp.col_lower[first] = lp.col_upper[first]
    return lp


def _world_doses(ctx: ModelContext, alloc: Allocation) -> FloatArray:
    idx = alloc.participants.get_indexer(ctx.world.participants.index)
    return np.asarray(alloc.doses[idx], dtype=np.float64)


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
    max_iter: int = 8,
    tol: float = 5e-4,
    candidates: Mapping[str, Allocation] | None = None,
    solver: str = "auto",
    curve_start: bool | None = None,
) -> ModelResult:
    """Model-based optimum (see the module docstring): local LP steps per participant × lot in
    a trust region, each simulated, from the best of the ``candidates`` and (``curve_start``;
    default: when there are no candidates) a first LP on value curves along the supply mix
    (``curves``: points simulated before, reused)."""
    t_start = time.perf_counter()
    n = ctx.n
    share_cap = np.full(n, np.inf) if share_cap is None else share_cap
    if ctx.worth is None:
        ctx.worth = valuable(ctx)
    mix = initial_mix(ctx)
    history: list[dict[str, Any]] = []
    base_notes = dict(notes or {})
    if curve_start is None:
        curve_start = not candidates
    if curves is None:
        curves = Curves(np.zeros((n, 1)), np.zeros((n, 1)))
    if curve_start and curves.people.shape[1] < len(GRID):  # no value curves yet: simulate them
        grid = np.asarray(GRID)[1:, None] * ctx.limit[None, :]  # (K, n)
        curves.add(grid.T.copy(), simulate_points(ctx, grid, mix).T)

    def record(est: float, sim: float, stage: str) -> None:
        history.append({"iteration": float(len(history) + 1), "lp_estimate": est, "simulated": sim,
                        "gap_share": (est - sim) / sim if sim else float("nan"),
                        "points": float(curves.people.shape[1]), "stage": stage})

    starts: dict[str, FloatArray] = {}
    alloc: Allocation | None = None
    lp: LinearProgram | None = None
    sol: Solution | None = None
    data: ProblemData | None = None
    if curve_start:
        # 1. one LP on the value curves along the supply mix
        pts, vals, factor = measure(ctx, np.zeros(n), mix, local=False)
        curves.add(pts, vals)
        data = build_problem(ctx, curves, mix, floor=floor, share_cap=share_cap, buffer=buffer, factor=factor)
        lp = build_lp(data)
        sol = solve_lp(lp, solver=solver)
        alloc = assign_solution(ctx.world, lp, sol, policy=policy, params=params or {}, round_units=round_units,
                                notes=dict(base_notes))
        starts["lp"] = _world_doses(ctx, alloc)
    # every start simulated in one run: the best is where the local stage begins
    for name, cand in (candidates or {}).items():
        starts[name] = _world_doses(ctx, cand)
    if not starts:
        raise AllocationError("the optimiser needs a first LP or a candidate allocation to start from")
    names = list(starts)
    stacked = np.concatenate([starts[k] for k in names], axis=0)
    per = simulate_rows(ctx, np.tile(np.arange(n), len(names)), stacked).reshape(len(names), n)
    if alloc is not None:
        record(float(alloc.notes["objective_rounded"]), float(per[0].sum()), "curves")
    k0 = int(np.argmax(per.sum(axis=1)))
    start_name = names[k0]
    doses, value = starts[start_name], per[k0]
    best_alloc = alloc if start_name == "lp" and alloc is not None else (candidates or {})[start_name]
    best_est = float(best_alloc.notes["objective_rounded"]) if start_name == "lp" else float(value.sum())
    best_lp, best_sol, best_data = lp, sol, data
    best_row: int | None = 0 if start_name == "lp" else None
    chosen = start_name
    # 2. local steps: per participant × lot values around the current allocation, trust region
    active = ctx.worth if ctx.worth is not None else valuable(ctx)
    scale = pro_rata_scale(ctx)
    rho = RHO0
    down, up, rows, row_doses = local_rows(ctx, doses, rho, active, scale)
    averted = simulate_rows(ctx, rows, row_doses)
    solves = 1 if curve_start else 0
    last: tuple[LinearProgram, Solution] | None = None
    while solves < max(max_iter, 2 if curve_start else 1):
        lm = local_model(doses, value, down, up, averted, active)
        lp_k = local_problem(ctx, lm, floor=floor, share_cap=share_cap, buffer=buffer)
        sol_k = solve_lp(lp_k, solver=solver)
        solves += 1
        last = (lp_k, sol_k)
        alloc_k = assign_solution(ctx.world, lp_k, sol_k, policy=policy, params=params or {},
                                  round_units=round_units, notes=dict(base_notes))
        new = _world_doses(ctx, alloc_k)
        est = lm.estimate(new)
        current = float(value.sum())
        if est <= current * (1.0 + tol):
            # no better allocation within the region by the local model: its secant slopes over a
            # large region can hide a gain close by, so look once more within a smaller one
            if rho <= RHO_RETRY or solves >= max_iter:
                break
            rho = max(rho / 4.0, RHO_MIN)
            down, up, rows, row_doses = local_rows(ctx, doses, rho, active, scale)
            averted = simulate_rows(ctx, rows, row_doses)
            continue
        # simulate the step; the points around it only when it is kept and the loop goes on
        sim_k = simulate_rows(ctx, np.arange(n), new)
        record(est, float(sim_k.sum()), "local")
        if sim_k.sum() > current:
            gain = float(sim_k.sum()) - current
            doses, value, rho = new, sim_k, min(2.0 * rho, RHO_MAX)
            best_alloc, best_est, best_lp, best_sol, best_data, chosen = alloc_k, est, lp_k, sol_k, lp_k.data, "lp"
            best_row = len(history) - 1
            alloc_k.notes["objective_lp"] = est
            alloc_k.notes["objective_rounded"] = est
            if (gain < tol * current and len(history) >= 2) or solves >= max_iter:
                break  # converged (after one re-linearisation at least), or no LP solve left
            down, up, rows, row_doses = local_rows(ctx, doses, rho, active, scale)
            averted = simulate_rows(ctx, rows, row_doses)
        else:
            rho = rho / 4.0
            if rho < RHO_MIN or solves >= max_iter:
                break
            down, up, rows, row_doses = local_rows(ctx, doses, rho, active, scale)
            averted = simulate_rows(ctx, rows, row_doses)
    if best_lp is None or best_sol is None or best_data is None:  # a candidate kept: the last LP stays live
        assert last is not None
        best_lp, best_sol = last
        best_data = best_lp.data
    if chosen != "lp":
        cand = best_alloc
        best_alloc = Allocation(policy=policy, participants=cand.participants, lots=cand.lots, doses=cand.doses,
                                buffer=cand.buffer, remainder=cand.remainder, params=params or {},
                                notes={**base_notes, "chosen": chosen, "objective_lp": best_est,
                                       "objective_rounded": best_est})
    sim = simulate_allocation(ctx, best_alloc)
    if chosen == "lp" and best_row is not None:  # the kept step, simulated with every dose
        history[best_row]["simulated"] = sim
        history[best_row]["gap_share"] = (history[best_row]["lp_estimate"] - sim) / sim if sim else float("nan")
    best_alloc.notes.setdefault("chosen", chosen)
    best_alloc.notes["start"] = start_name
    best_alloc.notes["relinearisation"] = pd.DataFrame(history)
    best_alloc.notes["iterations"] = len(history)
    best_alloc.notes["lp_solves"] = solves
    best_alloc.notes["simulated_deaths_averted"] = sim
    best_alloc.notes["lp_gap_share"] = (best_est - sim) / sim if sim else float("nan")
    best_alloc.notes["model_seconds"] = {**ctx.seconds, "total": time.perf_counter() - t_start}
    best_alloc.notes["engine_runs"] = ctx.runs
    best_alloc.notes["engine_rows"] = ctx.rows
    if sim < 0:
        raise AllocationError("the impact model gives negative deaths averted for the optimal allocation")
    return ModelResult(best_alloc, best_lp, best_sol, best_data, curves, mix, history, chosen)
