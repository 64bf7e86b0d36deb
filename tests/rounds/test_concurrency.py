"""Two processes answering one offer, and a process killed in the middle of reallocation."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from typing import Any

from dosewise.errors import ConflictError
from dosewise.ledger import open_store
from dosewise.rounds import Rounds, project

from .conftest import SCENARIO


def _answer(url: str, oid: str, action: str, go: Any, out: Any) -> None:
    rounds = Rounds(open_store(url))
    go.wait()
    try:
        if action == "accept":
            rounds.respond(oid, "accept")
        else:
            rounds.respond(oid, "decline", reason="other")
        out.put("ok")
    except ConflictError as exc:
        out.put(f"conflict: {exc}")


def test_two_processes_answer_one_offer(db_url: str) -> None:
    rounds = Rounds(open_store(db_url))
    rid = rounds.open(SCENARIO)
    ctx = mp.get_context("spawn")
    for k, oid in enumerate(list(rounds.state(rid).offers)[:3]):
        go, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_answer, args=(db_url, oid, a, go, out)) for a in ("accept", "decline")]
        for p in procs:
            p.start()
        time.sleep(1.0 if k == 0 else 0.3)  # let both reach the barrier
        go.set()
        for p in procs:
            p.join(60)
        results = sorted(out.get(timeout=5) for _ in procs)
        assert results[0].startswith("conflict") and results[1] == "ok", results
        answers = [e for e in open_store(db_url).read(offer_id=oid) if e.type in ("offer.accepted", "offer.declined")]
        assert len(answers) == 1
    assert open_store(db_url).verify().ok


CHILD = """
import datetime as dt, sys
from dosewise.ledger import open_store
from dosewise.rounds import Rounds
rounds = Rounds(open_store(sys.argv[1]))
rid = sys.argv[2]
day = dt.date(2021, 8, 30)
while True:
    state = rounds.state(rid)
    for k, (oid, o) in enumerate(state.offers.items()):
        if o["status"] == "offered":
            rounds.respond(oid, "decline" if k % 2 else "accept", reason="other" if k % 2 else None)
    day += dt.timedelta(days=8)
    rounds.advance(rid, day)
    print("pass", day, flush=True)
"""


def test_sigkill_mid_reallocation_loses_nothing_and_resumes(db_url: str) -> None:
    rounds = Rounds(open_store(db_url))
    rid = rounds.open(SCENARIO)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, db_url, rid], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    assert proc.stdout is not None
    proc.stdout.readline()  # at least one pass recorded
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    store = open_store(db_url)
    assert store.verify().ok
    events = list(store.read(round_id=rid))
    assert [e.seq for e in events] == list(range(events[0].seq, events[-1].seq + 1))
    advanced = sum(e.type == "round.advanced" for e in events)
    passes = sum(e.type == "reallocation.pass" for e in events)
    assert advanced == passes >= 1  # every advance landed whole or not at all
    state = project(events, rid)
    assert state.balance_ok()
    # resume from the ledger
    rounds = Rounds(store)
    assert state.today is not None
    rounds.advance(rid, state.today + dt.timedelta(days=30))
    assert rounds.state(rid).balance_ok() and store.verify().ok


RACER = """
import datetime as dt, random, sys, time
from dosewise.errors import ConflictError, RoundError
from dosewise.ledger import open_store
from dosewise.rounds import Rounds
url, rid, seed, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rng = random.Random(seed)
rounds = Rounds(open_store(url))
rounds.state(rid)
while time.time() < start:
    time.sleep(0.001)
day = dt.date(2021, 8, 30)
for step in range(4):
    state = rounds.state(rid)
    for oid, o in state.offers.items():
        if o["status"] == "offered" and rng.random() < 0.5:
            try:
                if rng.random() < 0.5:
                    rounds.respond(oid, "accept")
                else:
                    rounds.respond(oid, "decline", reason="other")
            except (ConflictError, RoundError):
                pass
    day += dt.timedelta(days=rng.choice([0, 8, 8, 16]))
    try:
        rounds.advance(rid, day)
    except RoundError:
        pass  # another process already moved the round past this date
print("done", flush=True)
"""


def test_concurrent_processes_advancing_one_round_offer_each_dose_once(db_url: str) -> None:
    """Four processes answer and advance the same round at once, several times over: every offer
    id is made once, every lot balances after every event, and replay equals the live state."""
    from .rules import check_round_rules

    trials = 3
    for trial in range(trials):
        store = open_store(db_url)
        rounds = Rounds(store)
        rid = rounds.open(SCENARIO, round_id=f"race-{trial}")
        start = time.time() + 4.0
        procs = [subprocess.Popen([sys.executable, "-c", RACER, db_url, rid, str(trial * 10 + k), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
        for proc in procs:
            _out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-2000:]
        events = list(store.read(round_id=rid))
        made = [e.payload["offer"] for e in events if e.type == "offer.made"]
        assert len(made) == len(set(made)), "an offer id was made twice"
        final = check_round_rules(events, rid, rounds.world(rid))
        live = Rounds(open_store(db_url)).state(rid)
        assert final.lots == live.lots and final.offers == live.offers
        dates = [e.payload["on"] for e in events if e.type == "reallocation.pass"]
        assert len(dates) == len(set(dates)), "two passes on the same date"
        assert store.verify().ok
        store.close()
