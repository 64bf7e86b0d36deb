"""Benchmark of the optimal-allocation LP: highspy from CSC arrays against PuLP (CBC), same run.

Instances
  global       every UN WPP 2024 country in starsim-data (187) × 8 products (one lot each, staggered
               availability and expiry) × 52 weeks × 4 tiers; weekly capacity 1% of population
               (every participant capacity-bound, so every week is a column); upper-middle and
               high income countries store ultra-cold products, others not.
  subnational  10,000 units × 5 products × 52 weeks × 4 tiers, ages copied from WPP countries and
               scaled; weekly capacity 1% of population; built directly as ProblemData.

Tier values for the weekly tier LP: the impact model's ``tier_values`` (one epidemic run per
tier), or with ``--synthetic`` plausible stand-ins (O'Driscoll 2021 IFR × 0.3 attack rate × 0.9
efficacy ÷ 2 doses; see tests/optimize/synthetic.py). The printout says which.

Closed loop (the ``optimal`` policy as shipped): on the global world, local values per participant ×
lot simulated by the impact model (stacked engine runs), LP, simulation of the solution,
re-linearisation until the simulated outcome stops improving; the time includes everything
(also in units of a same-process reference engine run, with the load average), the simple rules'
deaths averted on the same world are printed beside optimal's, and the re-optimisation after a
decline runs on the live HiGHS model it leaves (goals: < 10 s and < 1 s).

The closed loop runs in three modes, alternating, ``--loop-repeat`` times each: its stacked engine
runs in this process only (``DOSEWISE_WORKERS=1``), split over forked worker processes (the default,
one per core) and over threads (``DOSEWISE_WORKER_KIND=threads``); the figure is the default's median,
each mode's ratio to one process is printed, and the answer must be the same in every mode. On a
machine others are using, wall times say little about parallel speed, so each mode also prints its
CPU time and what it would take on an idle machine: this process's own CPU time plus, for every
stacked engine run, the CPU time of its busiest worker.

Run:  .venv/bin/python benchmarks/optimize.py [--synthetic] [--skip-subnational] [--pulp-limit SECONDS]
      [--loop-repeat N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dosewise.errors import AllocationError
from dosewise.optimize import (
    SOLVERS,
    LinearProgram,
    ProblemData,
    build_lp,
    choose_solver,
    linear_discount,
    reoptimize_after_decline,
    round_solution,
    solve_lp,
    solve_optimal,
)
from dosewise.optimize.problem import aggregate_weeks
from dosewise.reference.countries import country_info
from dosewise.reference.population import population_by_age, wpp_coverage
from dosewise.scenario import Scenario
from dosewise.world import World, build_world

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_synthetic", ROOT / "tests" / "optimize" / "synthetic.py")
assert _spec is not None and _spec.loader is not None
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)

PRODUCTS_8 = ("BNT162b2", "mRNA-1273", "AZD1222", "Covishield", "Ad26.COV2.S", "BBIBP-CorV", "CoronaVac", "NVX-CoV2373")
START = dt.date(2021, 3, 1)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def global_world() -> World:
    codes = sorted(c for c in wpp_coverage() if len(c) == 3)
    pops = population_by_age(codes, 2020).sum(axis=1)
    overrides: dict[str, Any] = {}
    for code, pop in zip(codes, pops, strict=True):
        try:
            income = country_info(code).income_level
        except Exception:  # a code the country list lacks: default profile
            income = None
        prof: dict[str, Any] = {"capacity_per_week": float(max(pop * 0.01, 1000.0))}
        if income not in ("High income", "Upper middle income"):
            prof["cold_chain"] = ["frozen", "2-8C"]
        overrides[code] = prof
    lots = []
    for k, pid in enumerate(PRODUCTS_8):
        avail = START + dt.timedelta(weeks=4 * k)
        lots.append(
            {
                "id": f"LOT-{pid}",
                "product": pid,
                "doses": int(50_000_000 + 25_000_000 * k),
                "available": avail.isoformat(),
                "expiry": (avail + dt.timedelta(days=240 + 15 * k)).isoformat(),
            }
        )
    sc = Scenario.model_validate(
        {
            "name": "benchmark-global",
            "participants": {"include": codes, "overrides": overrides},
            "lots": lots,
            "policy": {"name": "optimal", "buffer": 0.0, "options": {"weeks": 52, "tiers": 4}},
        }
    )
    return build_world(sc)


def subnational_problem(n: int = 10_000, products: int = 5, weeks: int = 52, seed: int = 1) -> ProblemData:
    rng = np.random.default_rng(seed)
    codes = sorted(c for c in wpp_coverage() if len(c) == 3)
    ages = population_by_age(codes, 2020)
    base = ages[rng.integers(0, len(codes), n)]
    pop = rng.lognormal(np.log(150_000), 1.0, n)
    pop_by_age = base / base.sum(axis=1, keepdims=True) * pop[:, None]
    sizes, dap = synthetic.tier_values_from_ages(pop_by_age)
    avail = np.array([0, 4, 8, 13, 20])[:products]
    expiry = avail + np.array([40, 30, 45, 35, 50])[:products]
    shelf = rng.choice([4, 6, 10], n)
    lead = rng.choice([0, 1, 2], n)
    return ProblemData(
        usable=rng.random((n, products)) < 0.85,
        first_week=avail[None, :] + lead[:, None],
        last_week=expiry[None, :] - shelf[:, None],
        value=dap,
        product_factor=np.array([0.967, 1.0, 1.0, 0.854, 0.787])[:products],
        discount=linear_discount(weeks, 0.5),
        budget=np.full(products, int(0.1 * pop.sum())),
        course=np.array([2.0, 2.0, 2.0, 1.0, 2.0])[:products],
        unit=np.array([1170, 1, 2400, 1, 1])[:products],
        capacity=pop * 0.01,
        tier_people=sizes,
        floor=np.zeros(n),
        share_cap=np.full(n, np.inf),
        participants=pd.Index([f"U{i:05d}" for i in range(n)]),
        lots=pd.Index([f"L{k}" for k in range(products)]),
    )


def pulp_run(lp: LinearProgram, time_limit: float) -> dict[str, float]:
    """The same model through PuLP (variables and constraints from the same arrays) and CBC."""
    import pulp

    t0 = time.perf_counter()
    prob = pulp.LpProblem("allocation", pulp.LpMaximize)
    xs = [pulp.LpVariable(f"x{j}", 0, float(u)) for j, u in enumerate(lp.col_upper)]
    prob += pulp.LpAffineExpression(zip(xs, lp.col_cost.tolist(), strict=True))
    cols = np.repeat(np.arange(lp.num_col), np.diff(lp.a_start))
    order = np.argsort(lp.a_index, kind="stable")
    bounds = np.searchsorted(lp.a_index[order], np.arange(lp.num_row + 1))
    for r in range(lp.num_row):
        sel = order[bounds[r] : bounds[r + 1]]
        if sel.size == 0:
            continue
        expr = pulp.LpAffineExpression(zip([xs[c] for c in cols[sel]], lp.a_value[sel].tolist(), strict=True))
        if np.isfinite(lp.row_upper[r]):
            prob += expr <= float(lp.row_upper[r])
        if np.isfinite(lp.row_lower[r]) and lp.row_lower[r] > 0:
            prob += expr >= float(lp.row_lower[r])
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    status = prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, threads=1))
    solve = time.perf_counter() - t1
    obj = float(pulp.value(prob.objective) or 0.0)
    return {"build": build, "solve": solve, "status": float(status), "objective_scaled": obj}


def run_global(args: argparse.Namespace) -> None:
    print("== global instance ==")
    t = time.perf_counter()
    world = global_world()
    took = time.perf_counter() - t
    print(f"world: {world.n} participants, {len(world.lots)} lots (built in {took:.1f} s, not timed below)")
    if not args.synthetic:
        t = time.perf_counter()
        from dosewise.optimize.policy import default_tier_values

        sizes, dap, factor = default_tier_values(world, 4)
        print(f"tier values: impact model tier_values ({time.perf_counter() - t:.1f} s, not timed below)")
    else:
        sizes, dap = synthetic.synthetic_tier_values(world)
        eff = world.products["efficacy_severe"].astype(float)
        factor = eff / eff["AZD1222"]
        print("tier values: SYNTHETIC (O'Driscoll IFR × 0.3 attack × 0.9 efficacy ÷ 2), impact model not used")
    params = Scenario.model_validate(
        {"participants": {"include": ["AFG"]}, "lots": [{"id": "x", "product": "AZ", "doses": 1,
         "available": "2021-01-01", "expiry": "2021-06-01"}],
         "policy": {"name": "optimal", "buffer": 0.0, "options": {"weeks": 52, "tiers": 4}}}
    ).policy
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    state = solve_optimal(world, params, tier_sizes=sizes, deaths_averted_per_dose=dap, product_factor=factor)
    total = time.perf_counter() - t0
    _, peak_py = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tm = state.timings
    lp = state.lp
    print(f"model: {lp.num_col:,} columns, {lp.num_row:,} rows, {lp.num_nz:,} nonzeros")
    print(
        f"highspy: build {tm['build']:.3f} s (problem arrays + CSC), solve {tm['solve']:.3f} s, "
        f"assign+round {tm['assign']:.3f} s, total {total:.3f} s (target < 5 s: {'OK' if total < 5 else 'MISSED'})"
    )
    print(f"memory: Python peak (tracemalloc) {peak_py / 2**20:.0f} MiB, process max RSS so far {rss_mib():.0f} MiB")
    a = state.allocation
    print(
        f"objective: LP {a.notes['objective_lp']:,.0f} deaths averted, rounded {a.notes['objective_rounded']:,.0f}, "
        f"lost to rounding {a.notes['lost_to_rounding']:,.1f}"
    )
    li = int(np.argmax(world.lots["doses"].to_numpy()))
    lot = str(world.lots.index[li])
    who = str(a.participants[int(np.argmax(a.doses[:, li]))])
    times = []
    for _ in range(3):
        t = time.perf_counter()
        new = reoptimize_after_decline(state, who, lot)
        times.append(time.perf_counter() - t)
        who = str(new.idxmax()) if new.sum() > 0 else who
    print(
        f"re-optimise after a decline (3 successive declines of {lot}): "
        + ", ".join(f"{s * 1000:.0f} ms" for s in times)
        + f" (target < 1 s: {'OK' if max(times) < 1 else 'MISSED'})"
    )
    if args.pulp_limit > 0:
        t = time.perf_counter()
        res = pulp_run(lp, args.pulp_limit)
        ratio_build = res["build"] / tm["build"]
        ratio_solve = res["solve"] / tm["solve"]
        print(
            f"PuLP+CBC on the same model: build {res['build']:.2f} s, solve {res['solve']:.2f} s "
            f"(status {res['status']:.0f}, CBC time limit {args.pulp_limit:.0f} s); "
            f"ratio PuLP/highspy build {ratio_build:.1f}x, solve {ratio_solve:.1f}x, "
            f"total {(res['build'] + res['solve']) / (tm['build'] + tm['solve']):.1f}x"
        )
        hi_obj = float(lp.col_cost @ (state.solution.x / lp.col_scale))
        print(f"objective check (scaled units): highspy {hi_obj:.6f}, CBC {res['objective_scaled']:.6f}")
        del res
        print(f"  (PuLP timed in {time.perf_counter() - t:.1f} s)")


def engine_unit(world: World) -> float:
    """Seconds of a fixed engine workload in this process (the no-vaccine run of the world's
    participants, 365 days, best of 3): the closed loop is also reported in these units, which
    load on the machine inflates about as much as the loop itself."""
    from dosewise.impact import ImpactParams, prepare, simulate

    setup = prepare(world, ImpactParams())
    simulate(setup)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        simulate(setup)
        best = min(best, time.perf_counter() - t)
    return best


def run_closed_loop(loop_repeat: int = 1) -> dict[str, float]:
    print("== closed loop: optimal on the impact model's value curves, global world ==")
    world = global_world()
    params = Scenario.model_validate(
        {"participants": {"include": ["AFG"]}, "lots": [{"id": "x", "product": "AZ", "doses": 1,
         "available": "2021-01-01", "expiry": "2021-06-01"}], "policy": {"name": "optimal", "buffer": 0.0}}
    ).policy
    print(f"world: {world.n} participants, {len(world.lots)} lots; epidemic: default settings "
          "(R0 2.5, 365 days, O'Driscoll IFR × Levin 2022 health system, oldest first)")
    unit = engine_unit(world)
    print(f"reference unit (same process): no-vaccine engine run, {world.n} participants × 365 days: {unit:.3f} s")
    # the same closed loop with its stacked engine runs in this process only, split over forked worker
    # processes (the default), and over threads; modes alternate, best and median of --loop-repeat each
    from dosewise.impact.workers import ENV as WORKERS_ENV
    from dosewise.impact.workers import KIND_ENV, engine_workers

    cores = engine_workers()
    modes = {"one process": {WORKERS_ENV: "1"}, f"{cores} processes": {WORKERS_ENV: str(cores), KIND_ENV: "processes"},
             f"{cores} threads": {WORKERS_ENV: str(cores), KIND_ENV: "threads"}}
    if cores == 1:
        modes = {"one process": modes["one process"]}
    default = f"{cores} processes" if cores > 1 else "one process"
    saved = {k: os.environ.get(k) for k in (WORKERS_ENV, KIND_ENV)}
    times: dict[str, list[float]] = {m: [] for m in modes}
    idle: dict[str, list[float]] = {m: [] for m in modes}
    cpu_all: dict[str, list[float]] = {m: [] for m in modes}
    answers: dict[str, float] = {}
    state = None
    for _ in range(max(1, loop_repeat)):
        for mode, env in modes.items():
            os.environ.pop(KIND_ENV, None)
            os.environ.update(env)
            t0 = time.perf_counter()
            c0 = time.process_time()
            st = solve_optimal(world, params)
            times[mode].append(time.perf_counter() - t0)
            here = time.process_time() - c0
            secs = st.allocation.notes["model_seconds"]
            # on an idle machine: this process's own work plus, per engine run, its busiest worker
            idle[mode].append(here - secs.get("engine_cpu_here", 0.0) + secs.get("engine_cpu_busiest", 0.0))
            cpu_all[mode].append(here - secs.get("engine_cpu_here", 0.0) + secs.get("engine_cpu", 0.0))
            answers[mode] = float(st.allocation.notes["simulated_deaths_averted"])
            if mode == default or state is None:
                state = st
            del st
            gc.collect()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    assert state is not None
    serial_med = float(np.median(times["one process"]))
    for mode, ts in times.items():
        med = float(np.median(ts))
        print(f"closed loop, engine runs in {mode}: best {min(ts):.2f} s, median {med:.2f} s of {len(ts)} "
              f"({serial_med / med:.2f}× one process); deaths averted {answers[mode]:,.0f}; CPU time in all "
              f"{np.median(cpu_all[mode]):.2f} s, on an idle machine about {np.median(idle[mode]):.2f} s "
              "(this process's own work + each engine run's busiest worker, CPU seconds)")
    same = len(set(answers.values())) == 1
    print(f"the same answer in every mode: {'yes' if same else 'NO'}")
    total = float(np.median(times[default]))
    a = state.allocation
    hist = a.notes["relinearisation"]
    secs = a.notes["model_seconds"]
    print(f"closed loop total ({default}, median) {total:.2f} s = {total / unit:.1f} reference units (goal < 10 s: "
          f"{'met' if total < 10 else 'NOT met'}): {a.notes['iterations']} simulated LP steps, "
          f"{a.notes['lp_solves']} LP solves, {a.notes['engine_runs']} stacked engine runs of "
          f"{a.notes['engine_rows']:,} participant-scenarios in all ({secs.get('simulate_points', 0):.2f} s), "
          f"final simulation {secs.get('simulate_solutions', 0):.2f} s; LP {state.lp.num_col:,} columns")
    for _, row in hist.iterrows():
        print(f"  iteration {int(row['iteration'])} ({row['stage']}): LP estimate {row['lp_estimate']:,.0f}, "
              f"simulated {row['simulated']:,.0f}, gap {row['gap_share']:+.2%}")
    print(f"steps started from {a.notes['start']}; answer from {a.notes['chosen']}; final LP-estimate-vs-simulation "
          f"gap {a.notes['lp_gap_share']:+.2%}")
    figures: dict[str, float] = {"closed_loop_s": total, "closed_loop_reference_units": total / unit,
                                 **{f"closed_loop_{m.replace(' ', '_')}_median_s": float(np.median(t))
                                    for m, t in times.items()},
                                 **{f"closed_loop_{m.replace(' ', '_')}_idle_machine_cpu_estimate": float(np.median(t))
                                    for m, t in idle.items()},
                                 "closed_loop_same_answer_every_mode": float(same),
                                 "reference_unit_s": unit, "lp_gap_share": float(a.notes["lp_gap_share"]),
                                 "iterations": float(a.notes["iterations"]),
                                 "lp_solves": float(a.notes["lp_solves"]),
                                 "engine_rows": float(a.notes["engine_rows"]),
                                 "optimal_deaths_averted": float(a.notes["simulated_deaths_averted"])}
    # the simple rules on the same world and epidemic (not timed)
    from dosewise.optimize.model import simulate_allocation
    from dosewise.optimize.policy import model_context
    from dosewise.registry import get_policy
    from dosewise.scenario import policy_params

    ctx = model_context(world)
    best = float(a.notes["simulated_deaths_averted"])
    print(f"  optimal: {best:,.0f} deaths averted")
    for name in ("covax-pro-rata", "pro-rata-65+", "high-income-first", "low-income-first"):
        alloc = get_policy(name)(world, policy_params(params, name=name))
        val = simulate_allocation(ctx, alloc)
        figures[f"{name}_deaths_averted"] = val
        print(f"  {name}: {val:,.0f} deaths averted (optimal {best / val - 1:+.2%} more)")
    li = int(np.argmax(world.lots["doses"].to_numpy()))
    lot = str(world.lots.index[li])
    who = str(a.participants[int(np.argmax(a.doses[:, li]))])
    times = []
    for _ in range(3):
        t = time.perf_counter()
        new = reoptimize_after_decline(state, who, lot)
        times.append(time.perf_counter() - t)
        who = str(new.idxmax()) if new.sum() > 0 else who
    print("re-optimise after a decline (3 successive declines of " + lot + "): "
          + ", ".join(f"{s * 1000:.0f} ms" for s in times) + f" (goal < 1 s: {'met' if max(times) < 1 else 'NOT met'})")
    figures["reoptimize_max_s"] = max(times)
    return figures


def run_subnational(args: argparse.Namespace) -> None:
    print("== sub-national instance ==")
    t = time.perf_counter()
    full = subnational_problem()
    print(f"problem arrays: {full.n:,} units × {full.n_lots} lots × {full.weeks} weeks × {full.tiers} tiers "
          f"(synthetic tier values; generated in {time.perf_counter() - t:.1f} s)")
    k = args.sub_weeks_per_period
    data = aggregate_weeks(full, k)
    if k > 1:
        print(f"REDUCED: weeks aggregated into {k}-week periods ({data.weeks} periods; doses spread evenly over each "
              "period's weeks, a restriction of the weekly model: feasible for it, objective at most its optimum). "
              "The weekly model (5.2 M columns) did not solve in 900 s by simplex nor in ~6 min by IPX here.")
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    lp = build_lp(data)
    build = time.perf_counter() - t0
    _, peak_py = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    solver = choose_solver(lp, args.sub_solver)
    print(f"model: {lp.num_col:,} columns, {lp.num_row:,} rows, {lp.num_nz:,} nonzeros; build {build:.2f} s, "
          f"Python peak {peak_py / 2**20:.0f} MiB; solver {solver} (asked: {args.sub_solver})")
    t = time.perf_counter()
    try:
        sol = solve_lp(lp, time_limit=args.sub_time_limit, solver=solver)
    except AllocationError as exc:
        print(f"highspy ({solver}) stopped after {time.perf_counter() - t:.0f} s: {exc}; "
              f"process max RSS {rss_mib():.0f} MiB")
        return
    print(f"highspy solve {sol.seconds:.1f} s ({sol.solver}, {sol.status}, {sol.iterations:,} iterations); "
          f"build + solve {build + sol.seconds:.1f} s; process max RSS {rss_mib():.0f} MiB")
    t = time.perf_counter()
    r = round_solution(lp, sol.x)
    print(f"rounding {time.perf_counter() - t:.2f} s; objective {r.objective_lp:,.0f}, lost to rounding "
          f"{r.lost_to_rounding:,.1f}")
    per_col_pulp = 25.0 / 1e6  # DESIGN.md §9: PuLP needs 20-25 s just to build a 1e6-variable LP here
    print(f"PuLP skipped: by DESIGN.md §9 (~{per_col_pulp * 1e6:.0f} s per 1e6 variables to build alone), "
          f"{lp.num_col:,} columns would take ~{lp.num_col * per_col_pulp:.0f} s to build, and CBC's solve "
          "of a model this size runs far beyond 10 minutes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", action="store_true", help="synthetic tier values for the weekly tier LP")
    ap.add_argument("--skip-tier-lp", action="store_true", help="only the closed loop on model value curves")
    ap.add_argument("--skip-subnational", action="store_true")
    ap.add_argument("--loop-repeat", type=int, default=1,
                    help="closed-loop runs per mode (one process, worker processes, threads), alternating")
    ap.add_argument("--pulp-limit", type=float, default=120.0, help="CBC time limit in seconds (0: skip PuLP)")
    ap.add_argument("--sub-time-limit", type=float, default=420.0, help="HiGHS time limit for the sub-national LP")
    ap.add_argument("--sub-solver", default="auto", choices=SOLVERS, help="HiGHS algorithm for the sub-national LP")
    ap.add_argument("--sub-weeks-per-period", type=int, default=4,
                    help="aggregate the sub-national weeks into periods of this many weeks (1: weekly model)")
    args = ap.parse_args()
    import highspy

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, highspy {getattr(highspy, '__version__', '?')}, "
          f"{os.cpu_count()} cores")
    from _common import environment, write_results

    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    figures = run_closed_loop(args.loop_repeat)
    figures["load_average_1min_at_start"] = load[0]
    figures["load_average_1min_at_end"] = os.getloadavg()[0]
    print(f"load average at end: {figures['load_average_1min_at_end']:.2f}")
    out = write_results("optimize", {"benchmark": "optimize", "environment": environment(), "figures": figures,
                                     "metrics": {f"optimize {k}": v for k, v in figures.items() if k.endswith("_s")}})
    print(f"wrote {out}")
    if args.skip_tier_lp:
        return
    run_global(args)
    if not args.skip_subnational:
        run_subnational(args)


if __name__ == "__main__":
    main()
