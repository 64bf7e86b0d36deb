"""Allocation speed: the vectorised COVAX pro-rata rule against a sort-based per-participant loop.

Run: ``.venv/bin/python benchmarks/allocate.py [--repeat N]``

Workloads (8 products, 5% buffer, shipping units), each allocated whole:

* every country UN WPP 2024 covers (187 participants);
* 10,000 and 100,000 sub-national units (log-normal populations, parents in five countries).

Baseline: the same rule written as a competent engineer would without NumPy, one participant
at a time: per lot, the water-filling level is found exactly by sorting participants by the
coverage they already have and walking the breakpoints (no bisection), then doses are rounded
to shipping units by largest remainder. Both run in this process with the same warm-up (1 run)
and the same number of timed runs; medians are compared, and the two must give identical doses.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, ratio, timed, write_results
from dosewise.policies import allocate_pro_rata
from dosewise.reference.population import wpp_coverage
from dosewise.scenario import parse_scenario
from dosewise.world import World, build_world

PRODUCTS = ["AZD1222", "Covishield", "BNT162b2", "mRNA-1273", "Ad26.COV2.S", "BBIBP-CorV", "CoronaVac",
            "NVX-CoV2373"]


def lots(scale: float) -> list[dict[str, Any]]:
    return [{"id": f"L{i}", "product": p, "doses": int(scale * (i + 1)), "available": "2021-03-01",
             "expiry": "2021-12-31"} for i, p in enumerate(PRODUCTS)]


def sorted_level(pops: list[float], covered: list[float], course: float, budget: float, ceiling: float) -> float:
    """The level c with sum_i max(min(c, ceiling) - covered_i, 0) * pop_i * course == budget, exactly,
    by walking the participants in order of the coverage they already have."""
    order = sorted(range(len(pops)), key=covered.__getitem__)
    need = budget / course
    pop_below = 0.0  # population of participants already below the level being tried
    pop_cov_below = 0.0  # sum of pop_i * covered_i over them
    for k, i in enumerate(order):
        pop_below += pops[i]
        pop_cov_below += pops[i] * covered[i]
        nxt = covered[order[k + 1]] if k + 1 < len(order) else math.inf
        level = (need + pop_cov_below) / pop_below
        if level <= nxt:
            return min(level, ceiling)
    return ceiling


def loop_pro_rata(world: World, buffer: float, ceiling: float) -> np.ndarray:
    """The same rule as ``covax-pro-rata`` with no floors or caps (as in these workloads)."""
    pops = [float(x) for x in world.population]
    covered = [0.0] * len(pops)
    usable = world.usable().tolist()
    out = np.zeros((len(pops), len(world.lots)), dtype=np.int64)
    order = sorted(range(len(world.lots)), key=lambda j: (world.lots["available"].iloc[j], world.lots.index[j]))
    for j in order:
        pid = world.lots["product"].iloc[j]
        course = float(world.products.loc[pid, "doses_per_course"])
        unit = int(world.products.loc[pid, "shipping_unit"])
        supply = int(world.lots["doses"].iloc[j])
        budget = supply - math.floor(buffer * supply + 0.5)
        elig = [i for i in range(len(pops)) if usable[i][j]]
        top = sum(max(ceiling - covered[i], 0.0) * pops[i] * course for i in elig)
        level = ceiling if top <= budget else sorted_level([pops[i] for i in elig], [covered[i] for i in elig],
                                                           course, budget, ceiling)
        raw = [max(min(level, ceiling) - covered[i], 0.0) * pops[i] * course for i in elig]
        upper = [max(ceiling - covered[i], 0.0) * pops[i] * course for i in elig]
        base = [math.floor(r / unit + 1e-9) for r in raw]
        spare = budget // unit - sum(base)
        cands = sorted((-(r / unit - b), k) for k, (r, b) in enumerate(zip(raw, base, strict=True))
                       if r / unit - b > 1e-9 and (b + 1) * unit <= upper[k] + 1e-6)
        for _, k in cands[:max(spare, 0)]:
            base[k] += 1
        for k, i in enumerate(elig):
            out[i, j] = base[k] * unit
            covered[i] += out[i, j] / course / pops[i]
    return out


def units(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    parents = np.array(["KEN", "UGA", "TZA", "ETH", "NGA"])[rng.integers(0, 5, n)]
    pops = rng.lognormal(10, 1.2, n).round() + 100
    return [{"id": f"U{i:07d}", "population": float(p), "parent": str(c)}
            for i, (p, c) in enumerate(zip(pops, parents, strict=True))]


def run(name: str, data: dict[str, Any], repeat: int) -> dict[str, Any]:
    sc = parse_scenario(data)
    world = build_world(sc)
    ours, alloc = timed(lambda: allocate_pro_rata(world, sc.policy), warmup=1, repeat=repeat)
    base, looped = timed(lambda: loop_pro_rata(world, sc.policy.buffer, sc.policy.tranches[-1]), warmup=1,
                         repeat=repeat)
    same = bool(np.array_equal(looped, alloc.doses))
    r = ratio(base["median_s"], ours["median_s"])
    print(f"{name:<40} {world.n:>8,} × {len(world.lots)} lots   vectorised {ours['median_s'] * 1e3:9.2f} ms   "
          f"sort-based loop {base['median_s'] * 1e3:10.1f} ms   ratio {r:7.1f}×   identical doses: {same}")
    if not same:
        raise SystemExit(f"{name}: the loop and the policy disagree on {int((looped != alloc.doses).sum())} cells")
    return {"participants": world.n, "lots": len(world.lots), "ours": ours, "baseline": base, "ratio": r,
            "identical": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each side (after 1 warm-up)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    print(f"median of {args.repeat} runs after 1 warm-up, both sides")
    cases: dict[str, Any] = {}
    cases["countries"] = run("all WPP 2024 countries, 8 products", {
        "participants": {"include": sorted(wpp_coverage())}, "lots": lots(20_000_000),
        "policy": {"buffer": 0.05}}, args.repeat)
    for n in (10_000, 100_000):
        cases[f"units_{n}"] = run(f"{n:,} sub-national units, 8 products", {
            "participants": {"units": units(n)}, "lots": lots(500 * n), "policy": {"buffer": 0.05}}, args.repeat)
    results = {
        "benchmark": "allocate",
        "environment": env,
        "workloads": cases,
        "metrics": {f"allocate {k} median_s": v["ours"]["median_s"] for k, v in cases.items()},
        "baseline": "sort-based per-participant loop, same warm-up and runs, identical doses",
    }
    print(f"wrote {write_results('allocate', results, args.json)}")


if __name__ == "__main__":
    main()
