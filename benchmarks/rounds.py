"""A full round for every country UN WPP 2024 covers, with 20% of offers declined and reallocated.

Run: .venv/bin/python benchmarks/rounds.py
Times, on an in-memory ledger and on a SQLite file: opening the round (allocation + offers),
answering every offer (20% declines), and the reallocation passes until the pool is empty;
the baseline is the same round with no declines (no reallocation), run in the same process.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for label, url in [("memory", "memory"), ("sqlite", str(Path(tmp) / "bench.db"))]:
            base = run(url if url == "memory" else url + ".base", 0.0)
            real = run(url, 0.2)
            print(f"{label:<7} no declines: {base['total_s']:6.2f} s ({base['events']:,} events)   "
                  f"20% declines: open {real['open_s']:.2f} s, answers+reallocation "
                  f"{real['respond_and_reallocate_s']:.2f} s, total {real['total_s']:.2f} s, {real['passes']} passes, "
                  f"{real['answers']:,} answers, {real['events']:,} events   ratio vs no declines "
                  f"{real['total_s'] / base['total_s']:.2f}×")


if __name__ == "__main__":
    main()
