"""Events per second of a round that uses every answer type, on an in-memory ledger and a SQLite file.

Run: .venv/bin/python benchmarks/mechanism.py [--participants 60] [--repeat 3]

The workload, end to end through :class:`dosewise.rounds.Rounds`: open a round of N participants
over three lots (one donated with earmarks, one bilateral), then answer every offer in turn by
acceptance in full, acceptance in part, decline, delayed receipt or opting out of the product;
propose and accept or refuse transfers; record readiness (a few participants never ready, so
their acceptances lapse); apply to the humanitarian buffer and decide; donate a lot mid-round;
advance (reallocation and readiness lapses); ship every held offer in two shipments, deliver
them, and record doses expired unused. Every command checks its input against the round's
state and appends with the round's compare-and-set.

Baseline, in the same process with the same warm-up and repetitions: the very same events
appended to a fresh ledger one command's batch at a time with no checks and no projection (the
storage floor a plain event log would pay). The ratio says what the checks and the projection
cost on top of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, timed, write_results
from dosewise.ledger import NewEvent, Store, open_store
from dosewise.reference.population import wpp_coverage
from dosewise.rounds import Rounds
from dosewise.scenario import Lot

D = dt.date.fromisoformat
CONDITIONS = ("deployment_plan", "indemnity", "import_permit")


def scenario_text(n: int) -> str:
    codes = sorted(wpp_coverage())[:n]
    return yaml.safe_dump({
        "name": "every answer type",
        "as_of": "2021-08-30",
        "participants": {"include": codes},
        "lots": [
            {"id": "CV", "product": "CoronaVac", "doses": 30_000_000, "available": "2021-08-30",
             "expiry": "2022-02-28"},
            {"id": "AZD", "product": "AZD1222", "doses": 10_000_000, "available": "2021-08-30",
             "expiry": "2022-03-31", "donor": "GBR", "channel": "covax", "earmarks": {"exclude": codes[:3]},
             "pledged": "2021-06-13"},
            {"id": "SPUT", "product": "Sputnik V", "doses": 1_000_000, "available": "2021-08-30",
             "expiry": "2022-03-31", "donor": "RUS", "channel": "bilateral", "earmarks": {"recipients": [codes[0]]}},
        ],
        "policy": {"name": "covax-pro-rata", "buffer": 0.05},
        "round": {"id": "B1", "opens": "2021-08-30", "response_days": 7, "reallocation": "pro-rata",
                  "readiness": {"days": 20}},
    }, sort_keys=False)


def play(store: Store, text: str) -> int:
    """The whole workload on ``store``; returns the number of events recorded."""
    r = Rounds(store)
    rid = r.open(text)
    day = D("2021-09-01")
    state = r.state(rid)
    codes = list(state.opened["participants"])
    never_ready = set(codes[1::7])
    for k, (oid, o) in enumerate(list(state.offers.items())):
        if r.state(rid).offers[oid]["status"] != "offered":
            continue
        kind = k % 5
        if kind == 0:
            r.respond(oid, "accept", on=day)
        elif kind == 1:
            r.respond(oid, "accept", on=day, doses=max(1, o["doses"] // 2))
        elif kind == 2:
            r.respond(oid, "decline", reason="other", on=day)
        elif kind == 3:
            r.respond(oid, "accept", on=day)
            r.delay(oid, day + dt.timedelta(days=5), on=day)
        else:
            r.opt_out(rid, o["participant"], state.lots[o["lot"]]["product"], on=day)
    state = r.state(rid)
    held = [oid for oid, o in state.offers.items() if o["status"] == "accepted" and o["lot"] == "CV"]
    for k, oid in enumerate(held[:10]):
        giver = state.offers[oid]["participant"]
        to = next(c for c in codes if c != giver and c not in never_ready)
        ev = r.transfer(oid, to, max(1, state.offers[oid]["doses"] // 10), on=day)
        r.answer_transfer(rid, ev.payload["transfer"], k % 3 != 0, on=day)
    for lot_id in ("CV", "AZD"):
        ok = r.request_buffer(rid, lot_id, codes[-1], 10_000, for_whom="refugees", why="humanitarian settings",
                              on=day)
        r.decide_buffer(rid, ok.payload["request"], True, on=day)
        no = r.request_buffer(rid, lot_id, codes[-2], 10**8, for_whom="refugees", why="humanitarian settings",
                              on=day)
        r.decide_buffer(rid, no.payload["request"], False, reason="more than the buffer holds", on=day)
    r.donate(rid, Lot(id="PF-D", product="BNT162b2", doses=500_000, available=day, expiry=D("2022-01-31"),
                      donor="USA", earmarks={"recipients": codes[10:20]}))  # type: ignore[arg-type]
    state = r.state(rid)
    products = {lot["product"] for lot in state.lots.values()}
    for code in codes:
        if code in never_ready:
            continue
        for product in products:
            for c in CONDITIONS:
                r.record_readiness(rid, code, product, c, day)
    r.advance(rid, D("2021-09-25"))  # lapses, readiness lapses, one pass
    ship_day = D("2021-09-26")
    state = r.state(rid)
    for oid in [o for o in state.offers if state.unshipped(o) > 0]:
        o = state.offers[oid]
        if o["participant"] in never_ready:
            continue
        first = max(1, state.unshipped(oid) // 2)
        r.ship(oid, on=ship_day, doses=first)
        if r.state(rid).unshipped(oid) > 0:
            r.ship(oid, on=ship_day + dt.timedelta(days=3), doses=r.state(rid).unshipped(oid))
    state = r.state(rid)
    for k, sid in enumerate(list(state.shipments)):
        r.deliver(rid, sid, on=ship_day + dt.timedelta(days=6))
        if k % 4 == 0:
            sh = r.state(rid).shipments[sid]
            expiry = D(r.state(rid).lots[sh["lot"]]["expiry"])
            r.expire_unused(rid, sid, max(1, sh["doses"] // 20), on=expiry)
    problems = r.state(rid).problems()
    assert not problems, problems
    head = store.head()
    return 0 if head is None else head.seq


def batches(store: Store) -> list[list[NewEvent]]:
    """The recorded events, grouped as the commands appended them (by transaction time)."""
    out: list[list[NewEvent]] = []
    last: Any = None
    for ev in store.read():
        ne = NewEvent(type=ev.type, payload=dict(ev.payload), actor=ev.actor, round_id=ev.round_id,
                      offer_id=ev.offer_id, lot_id=ev.lot_id, participant=ev.participant,
                      idempotency_key=ev.idempotency_key, unique_slot=ev.unique_slot)
        if ev.recorded_at != last:
            out.append([])
            last = ev.recorded_at
        out[-1].append(ne)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    env = environment()
    print(env["summary"])
    text = scenario_text(args.participants)
    figures: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def fresh(kind: str) -> Store:
            return open_store("memory") if kind == "memory" else open_store(str(Path(tmp) / f"{next(counter)}.db"))

        for kind in ("memory", "sqlite"):
            store = fresh(kind)
            n = play(store, text)
            recorded = batches(store)
            store.close()

            def ours(kind: str = kind) -> int:
                s = fresh(kind)
                try:
                    return play(s, text)
                finally:
                    s.close()

            def baseline(kind: str = kind, recorded: list[list[NewEvent]] = recorded) -> int:
                s = fresh(kind)
                try:
                    for batch in recorded:
                        s.append(batch)
                    return sum(len(b) for b in recorded)
                finally:
                    s.close()

            t_ours, got = timed(ours, warmup=1, repeat=args.repeat)
            t_base, base_n = timed(baseline, warmup=1, repeat=args.repeat)
            assert got == n and base_n == n
            rate = n / t_ours["median_s"]
            figures[kind] = {"events": n, "commands": len(recorded), "ours": t_ours, "baseline": t_base,
                             "events_per_s": rate, "baseline_events_per_s": n / t_base["median_s"]}
            metrics[f"mechanism round {kind} median_s"] = t_ours["median_s"]
            print(f"{kind:>6}: {n:,} events in {len(recorded):,} commands; every answer type through the "
                  f"commands {t_ours['median_s']:.2f} s = {rate:,.0f} events/s; the same events appended "
                  f"unchecked {t_base['median_s']:.2f} s = {n / t_base['median_s']:,.0f} events/s; "
                  f"checks and projection cost x{t_ours['median_s'] / t_base['median_s']:.1f} "
                  f"(median of {args.repeat})")
    out = write_results("mechanism", {"benchmark": "mechanism", "environment": env, "figures": figures,
                                      "metrics": metrics}, args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
