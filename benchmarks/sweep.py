"""Sweep speed: cells per second on Dask against the plain loop over the same cells.

Run: ``.venv/bin/python benchmarks/sweep.py [--cells 1000] [--days 120] [--workers N]``

Workload: the demo scenario (92 AMC participants, the first COVAX AstraZeneca round) with
``covax-pro-rata`` and ``pro-rata-65+`` on a grid of R0 × prior immunity × supply scale of about
``--cells`` cells, ``--days`` days each.

Baseline: the plain loop a competent engineer would write with the public API, in this process:
the scenario loaded once, then for each cell, one after another, the epidemic settings with the
cell's values (:func:`dosewise.epidemic.with_overrides`) and :func:`dosewise.app.compare` on the
scenario with its lots scaled. Ours: :func:`dosewise.app.sweep` on Dask's ``processes``
scheduler (end to end: worker start-up, the scenario sent, worlds built once per worker and
supply level), then ``threads``. Each is warmed up by one run of a one-cell grid; the two must
give the same deaths averted in every row.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, ratio, write_results
from dosewise import app
from dosewise.epidemic import with_overrides
from dosewise.sweep import SUPPLY_SCALE, expand, parse_sweep, scaled

POLICIES = ["covax-pro-rata", "pro-rata-65+"]


def grid(cells: int, days: int) -> dict[str, Any]:
    side = max(1, round(cells ** (1 / 3)))
    return {"scenario": "demo", "policies": POLICIES, "grid": {
        "r0": [round(float(x), 3) for x in np.linspace(1.2, 4.0, side)],
        "prior_immunity": [round(float(x), 3) for x in np.linspace(0.0, 0.4, side)],
        SUPPLY_SCALE: [round(float(x), 3) for x in np.linspace(0.25, 3.0, side)],
        "days": [days]}}


def plain_loop(spec: dict[str, Any]) -> list[float]:
    sc = app.load("demo")
    cells = expand(parse_sweep(spec), sc)
    out: list[float] = []
    for cell in cells:
        overrides = {k: v for k, v in cell.values.items() if k != SUPPLY_SCALE}
        settings = with_overrides(sc.epidemic, overrides)
        result = app.compare(scaled(sc, cell.supply_scale), policies=POLICIES, epidemic=settings)
        out.extend(result.frame.loc[POLICIES, "deaths_averted"].astype(float).to_list())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    spec = grid(args.cells, args.days)
    one = {**spec, "grid": {k: v[:1] for k, v in spec["grid"].items()}}
    n = int(np.prod([len(v) for v in spec["grid"].values()]))
    print(f"workload: demo, {len(POLICIES)} policies, {n:,} cells of {args.days} days; load average "
          f"{os.getloadavg()[0]:.2f} before")
    figures: dict[str, dict[str, float]] = {}

    plain_loop(one)  # warm-up
    t0 = time.perf_counter()
    expected = plain_loop(spec)
    base = time.perf_counter() - t0
    figures["plain loop"] = {"seconds": base, "cells_per_s": n / base, "load": os.getloadavg()[0]}
    for scheduler in ("processes", "threads"):
        app.sweep(one, scheduler="synchronous")  # warm-up
        t0 = time.perf_counter()
        rows = app.sweep(spec, scheduler=scheduler, workers=args.workers)
        took = time.perf_counter() - t0
        got = rows["deaths_averted"].to_list()
        if not np.allclose(got, expected, rtol=1e-12, atol=0):
            raise SystemExit(f"{scheduler}: rows differ from the plain loop")
        figures[f"sweep {scheduler}"] = {"seconds": took, "cells_per_s": n / took, "load": os.getloadavg()[0]}
    print(f"{'':18} {'seconds':>9} {'cells/s':>9} {'vs loop':>8} {'load avg':>9}")
    for name, f in figures.items():
        print(f"{name:18} {f['seconds']:9.1f} {f['cells_per_s']:9.2f} {ratio(base, f['seconds']):7.2f}x "
              f"{f['load']:9.2f}")
    results = {
        "benchmark": "sweep",
        "environment": env,
        "workload": {"cells": n, "days": args.days, "policies": POLICIES, "workers": args.workers},
        "figures": figures,
        "metrics": {f"sweep {k} s": v["seconds"] for k, v in figures.items()},
    }
    print(f"wrote {write_results('sweep', results, args.json)}")


if __name__ == "__main__":
    main()
