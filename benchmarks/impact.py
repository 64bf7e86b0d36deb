"""Benchmark the impact engine: 190 participants × 16 age bands × 730 days, two products.

Participants: the 187 countries with UN WPP 2024 population in starsim-data (all have a Prem
2021 or 2017 matrix) plus Dominica, Micronesia and Grenada with a population and a like
country (contact-matrix proxies), 190 in all. Doses of AZD1222 from day 10 and BNT162b2 from
day 30 to day 200, 0.2% of the population a day each, so every one of those days has a
vaccination pulse.

Every figure is measured on all 190 participants (nothing extrapolated), best of
``--repeat`` runs after one warm-up run, in this process:

* **engine**: all participants at once (RK4, one step a day, participants in cache-sized blocks,
  each participant's numbers the same bit for bit whatever its block);
* **per-participant loop of the same RK4**: the same ``simulate`` called once per participant
  (what a competent engineer writes first: one country at a time, the same integrator);
* **solve_ivp at matching accuracy**: the same equations written out compartment by
  compartment (``dosewise.impact.reference``), one participant at a time, RK45 with the
  tolerance whose error on total deaths against a tight LSODA solve (rtol 1e-10, on 6
  participants) is closest to, and not smaller than, the engine's own;
* **stacked scenarios**: the 190 participants stacked 1, 10 and 52 times along the participant
  axis (up to 9,880 participant-scenarios), without vaccine and with the two products' doses,
  cost per participant-day (goal: no worse than one scenario, and ≤ 3 µs), wall time and this
  process's CPU time (the CPU figure is the steadier one on a machine others are using).

Each participant stops integrating once its epidemic is over (fewer than 1e-7 of the population
latent or infectious, with the effective reproduction number below 1 at the highest β still to
come, and no waning), and a block of participants once all of its participants have: the
remaining days only give doses. The figures are per participant-day of the whole horizon, as the
workload is.

Run: ``.venv/bin/python benchmarks/impact.py [--repeat 3] [--skip-ivp]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy

from _common import environment, write_results
from dosewise.impact import ImpactParams, prepare, product_vaccines, simulate
from dosewise.impact.reference import solve_reference
from dosewise.reference.population import wpp_coverage
from dosewise.scenario import Scenario
from dosewise.world import build_world

DAYS = 730


def world_190():  # type: ignore[no-untyped-def]
    codes = sorted(wpp_coverage())
    extra = {
        "DMA": {"population": 71991, "age_structure_like": "LCA"},
        "FSM": {"population": 115021, "age_structure_like": "KIR"},
        "GRD": {"population": 112519, "age_structure_like": "VCT"},
    }
    sc = Scenario.model_validate(
        {
            "participants": {"include": codes + list(extra), "overrides": extra},
            "lots": [{"id": "x", "product": "AZD1222", "doses": 1, "available": dt.date(2021, 1, 1),
                      "expiry": dt.date(2022, 1, 1)}],
        }
    )
    return build_world(sc), {k: v["age_structure_like"] for k, v in extra.items()}


def best_of(fn: Callable[[], Any], repeat: int, cpu: list[float] | None = None) -> tuple[float, list[float]]:
    """Best wall time of ``repeat`` runs after one warm-up; the CPU time of this process in each
    run is appended to ``cpu`` (less sensitive than wall time to other work on the machine)."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        c = time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.process_time() - c)
    return min(times), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-ivp", action="store_true", help="leave out the solve_ivp loop (minutes)")
    args = ap.parse_args()
    env = environment()
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    figures_load = load[0]
    print(env["summary"], f"(python {platform.python_version()}, scipy {scipy.__version__}, {os.cpu_count()} cores)")
    figures: dict[str, float] = {"load_average_1min_at_start": figures_load}

    t = time.perf_counter()
    world, like = world_190()
    params = ImpactParams(days=DAYS)
    setup = prepare(world, params, like=like)
    t_prep = time.perf_counter() - t
    n = setup.n
    doses = np.zeros((n, 2, DAYS))
    doses[:, 0, 10:200] = 0.002 * world.population[:, None]
    doses[:, 1, 30:200] = 0.002 * world.population[:, None]
    vac = product_vaccines(world, ["AZD1222", "BNT162b2"], doses, params)
    pd_count = n * DAYS
    print(f"participants {n} × 16 age bands × {DAYS} days, 2 products, RK4 {params.steps_per_day} step(s)/day")
    print(f"prepare (population, Prem matrices, IFR, β): {t_prep:.3f} s")

    engine, times = best_of(lambda: simulate(setup, vac), args.repeat)
    traj = simulate(setup, vac)
    print(f"engine, all participants at once (best of {args.repeat}): {engine:.3f} s = "
          f"{engine / pd_count * 1e6:.2f} µs per participant-day (runs: {', '.join(f'{x:.3f}' for x in times)})")

    def loop() -> None:
        for p in range(n):
            simulate(setup.subset([p]), dataclasses.replace(vac, doses=vac.doses[p : p + 1]))

    figures["engine_s"] = engine
    figures["engine_us_per_participant_day"] = engine / pd_count * 1e6
    looped, times = best_of(loop, args.repeat)
    figures["same_rk4_loop_s"] = looped
    print(f"per-participant loop of the same RK4 (best of {args.repeat}): {looped:.3f} s  → engine is "
          f"{looped / engine:.1f}× faster")

    if not args.skip_ivp:
        lay = traj.layout
        check = np.linspace(0, n - 1, 6).astype(int)
        tight = {int(p): float(solve_reference(setup, int(p), vac, rtol=1e-10)[-1, lay.dw] @ setup.ifr[p])
                 for p in check}

        def err_of(deaths: dict[int, float]) -> float:
            return max(abs(deaths[p] - tight[p]) / tight[p] for p in tight)

        eng_err = err_of({p: float(traj.deaths[-1, p].sum()) for p in tight})
        chosen, ivp_err = 1e-3, float("inf")
        for rtol in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
            e = err_of({p: float(solve_reference(setup, p, vac, rtol=rtol, method="RK45")[-1, lay.dw] @ setup.ifr[p])
                        for p in tight})
            chosen, ivp_err = rtol, e
            if e <= eng_err:
                break
        print(f"accuracy (total deaths vs LSODA rtol 1e-10, 6 participants): engine {eng_err:.1e}, "
              f"solve_ivp RK45 rtol {chosen:g} {ivp_err:.1e}")

        def ivp() -> None:
            for p in range(n):
                solve_reference(setup, p, vac, rtol=chosen, method="RK45")

        ivp_t, times = best_of(ivp, 1)
        figures["solve_ivp_loop_s"] = ivp_t
        figures["solve_ivp_rtol"] = chosen
        print(f"solve_ivp loop, all {n} participants (RK45 rtol {chosen:g}, best of 1 after warm-up): {ivp_t:.1f} s"
              f"  → engine is {ivp_t / engine:.0f}× faster")

    short = dataclasses.replace(setup, beta=setup.beta[:365])
    short_vac = dataclasses.replace(vac, doses=vac.doses[:, :, :365])
    for label, with_vac in (("no-vaccine runs", False), ("with the two products' doses", True)):
        print(f"stacked scenarios (participants repeated along the participant axis, {label}, 365 days; "
              "µs per participant-day of the horizon, the engine stops a block once its epidemics are over):")
        base_cost = None
        for reps in (1, 10, 52):
            rows = np.tile(np.arange(n), reps)
            st = short.subset(rows)
            sv = dataclasses.replace(short_vac, doses=short_vac.doses[rows]) if with_vac else None
            cpu: list[float] = []
            took, _ = best_of(lambda st=st, sv=sv: simulate(st, sv), 1 if reps > 1 else args.repeat,  # type: ignore[misc]
                              cpu)
            cost = took / (st.n * 365) * 1e6
            cpu_cost = min(cpu) / (st.n * 365) * 1e6
            base_cost = base_cost or cost
            key = "stacked_vaccinated" if with_vac else "stacked"
            figures[f"{key}_{st.n}_us_per_participant_day"] = cost
            figures[f"{key}_{st.n}_cpu_us_per_participant_day"] = cpu_cost
            print(f"  {st.n:>6} participant-scenarios: {took:.2f} s, {cost:.2f} µs per participant-day "
                  f"(CPU {cpu_cost:.2f}; {cost / base_cost:.2f}× one scenario; goal ≤ 3 µs: "
                  f"{'met' if cost <= 3 else 'NOT met'})")
    load = os.getloadavg()
    figures["load_average_1min_at_end"] = load[0]
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    metrics = {f"impact {k}": v for k, v in figures.items() if k.endswith(("_s", "_day"))}
    out = write_results("impact", {"benchmark": "impact", "environment": env, "repeat": args.repeat,
                                   "figures": figures, "metrics": metrics})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
