"""A full round for every country UN WPP 2024 covers, with 20% of offers declined and reallocated.

Run: .venv/bin/python benchmarks/rounds.py
Times, on an in-memory ledger and on a SQLite file: opening the round (allocation + offers),
answering every offer (20% declines), and the reallocation passes until the pool is empty;
the baseline is the same round with no declines (no reallocation), run in the same process.
Both run once untimed first (imports, reference data, SQLite and NumPy warm), then alternate for
the same number of timed runs, each on a fresh ledger; medians are reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, write_results
from dosewise.ledger import open_store
from dosewise.reference.population import wpp_coverage
from dosewise.rounds import Rounds

PRODUCTS = ["AZD1222", "Covishield", "BNT162b2", "mRNA-1273", "Ad26.COV2.S", "BBIBP-CorV", "CoronaVac",
            "NVX-CoV2373"]


def scenario_text() -> str:
    return yaml.safe_dump({
        "name": "all countries",
        "as_of": "2021-06-01",
        "participants": {"include": sorted(wpp_coverage())},
        "lots": [{"id": f"L{i}", "product": p, "doses": 20_000_000 * (i + 1), "available": "2021-06-01",
                  "expiry": "2022-06-01"} for i, p in enumerate(PRODUCTS)],
        "policy": {"name": "covax-pro-rata", "buffer": 0.05},
        "round": {"id": "BENCH", "response_days": 7, "reallocation": "pro-rata"},
    })


def run(url: str, decline_share: float, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    store = open_store(url)
    rounds = Rounds(store, actor="bench")
    t0 = time.perf_counter()
    rid = rounds.open(scenario_text())
    t1 = time.perf_counter()
    day = dt.date(2021, 6, 1)
    passes = 0
    answered = 0
    while True:
        state = rounds.state(rid)
        open_offers = [o for o, v in state.offers.items() if v["status"] == "offered"]
        for oid in open_offers:
            if rng.random() < decline_share:
                rounds.respond(oid, "decline", reason="short_shelf_life")
            else:
                rounds.respond(oid, "accept")
            answered += 1
        state = rounds.state(rid)
        if sum(lot["pool"] for lot in state.lots.values()) == 0 or passes >= 10:
            break
        day += dt.timedelta(days=8)
        rounds.advance(rid, day)
        passes += 1
    t2 = time.perf_counter()
    state = rounds.state(rid)
    assert state.balance_ok() and store.verify().ok
    events = sum(1 for _ in store.read())
    store.close()
    return {"open_s": t1 - t0, "respond_and_reallocate_s": t2 - t1, "total_s": t2 - t0, "passes": passes,
            "answers": answered, "events": events,
            "expired_or_pool": sum(lot["pool"] + lot["expired"] for lot in state.lots.values())}


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each configuration (after 1 warm-up)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    print(f"median of {args.repeat} runs after 1 warm-up, each configuration, each on a fresh ledger")
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("memory", "sqlite"):
            def url(tag: str, label: str = label) -> str:
                return "memory" if label == "memory" else str(Path(tmp) / f"{tag}.db")

            run(url("warm-base"), 0.0)  # warm-up, untimed
            run(url("warm-real"), 0.2)
            base_runs, real_runs = [], []
            for i in range(args.repeat):
                base_runs.append(run(url(f"base{i}"), 0.0))
                real_runs.append(run(url(f"real{i}"), 0.2))
            base = median_run(base_runs)
            real = median_run(real_runs)
            print(f"{label:<7} no declines: {base['total_s']:6.2f} s ({base['events']:,.0f} events)   "
                  f"20% declines: open {real['open_s']:.2f} s, answers+reallocation "
                  f"{real['respond_and_reallocate_s']:.2f} s, total {real['total_s']:.2f} s, "
                  f"{real['passes']:.0f} passes, "
                  f"{real['answers']:,.0f} answers, {real['events']:,.0f} events   ratio vs no declines "
                  f"{real['total_s'] / base['total_s']:.2f}×")
            figures[label] = {"no_declines": base, "declines_20pct": real}
    metrics = {f"rounds {label} {kind} total median_s": fig[kind]["total_s"]
               for label, fig in figures.items() for kind in ("no_declines", "declines_20pct")}
    out = write_results("rounds", {"benchmark": "rounds", "environment": env, "repeat": args.repeat,
                                   "figures": figures, "metrics": metrics})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
