"""Benchmark the impact engine: 190 participants × 16 age bands × 730 days, two products.

Participants: the 187 countries with UN WPP 2024 population in starsim-data (all have a Prem
2021 or 2017 matrix) plus Dominica, Micronesia and Grenada with a population and a like
country (contact-matrix proxies), 190 in all. Doses of AZD1222 from day 10 and BNT162b2 from
day 30 to day 200, 0.2% of the population a day each, so every one of those days has a
vaccination pulse.

Baseline, in the same run: the same equations solved one participant at a time by
``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-8; see ``dosewise.impact.reference``), on a
subset of participants, extrapolated linearly to 190.

Run: ``.venv/bin/python benchmarks/impact.py [--subset 6] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subset", type=int, default=6, help="participants solved by the solve_ivp baseline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

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

    simulate(setup, vac)  # warm-up
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        traj = simulate(setup, vac)
        times.append(time.perf_counter() - t)
    engine = min(times)

    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(n, size=min(args.subset, n), replace=False))
    t = time.perf_counter()
    refs = [solve_reference(setup, int(p), vac, rtol=1e-8) for p in subset]
    loop = time.perf_counter() - t
    loop_190 = loop / len(subset) * n

    lay = traj.layout
    ref_deaths = np.array([float(ref[-1, lay.dw] @ setup.ifr[p]) for p, ref in zip(subset, refs, strict=True)])
    eng_deaths = traj.deaths[-1, subset].sum(axis=1)
    err = float((np.abs(eng_deaths - ref_deaths) / ref_deaths).max())
    print(f"participants {n} × 16 age bands × {DAYS} days, 2 products, {lay.size} compartments, "
          f"RK4 {params.steps_per_day} step(s)/day")
    print(f"prepare (population, Prem matrices, IFR, β):  {t_prep:.3f} s")
    print(f"engine, vaccinated run (best of {args.repeat}):    {engine:.3f} s   (all runs: "
          + ", ".join(f"{x:.3f}" for x in times) + ")")
    print(f"solve_ivp loop (LSODA, rtol 1e-8), {len(subset)} participants: {loop:.2f} s → "
          f"extrapolated to {n}: {loop_190:.1f} s")
    print(f"speed-up vs per-participant solve_ivp loop:   {loop_190 / engine:.0f}×")
    print(f"largest relative difference in total deaths on the subset: {err:.2e}")
    fast, ratio = engine < 1, loop_190 / engine >= 50
    print(f"target: < 1 s ({'met' if fast else 'NOT met'}), ≥ 50× ({'met' if ratio else 'NOT met'})")


if __name__ == "__main__":
    main()
