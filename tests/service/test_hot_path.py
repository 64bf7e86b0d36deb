"""The server's write path keeps every guarantee while it shares work between requests: the chain
check runs inside each group commit's write lock (so whatever another writer appended is checked
before anything is built on it), reads of a round shared between threads still see every event
recorded before the call, and API keys are checked once per process without keeping a token."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from dosewise.app import Desk
from dosewise.errors import ConflictError, IntegrityError
from dosewise.scenario import parse_scenario_text

SCENARIO = """
name: hot path
participants: {include: [KEN, UGA, NPL, BGD, PRK, MNG]}
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}
  - {id: PF, product: BNT162b2, doses: 117000, available: 2021-08-30, expiry: 2021-12-31}
round: {id: T1, opens: 2021-08-30, reallocation: pro-rata}
"""


def _ledger(tmp_path: Path) -> tuple[str, list[str]]:
    path = str(tmp_path / "l.db")
    with Desk.open(path, create=True) as desk:
        offers = list(desk.open_round(parse_scenario_text(SCENARIO)).offers)
    return path, offers


def _edit(path: str, sql: str) -> None:
    with sqlite3.connect(path) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(sql)


def test_server_desk_builds_on_what_others_appended_only_once_checked(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    with Desk.open(path, group_commit=True) as server:
        server.respond(offers[0], "accept")
        with Desk.open(path) as other:  # another process, well-behaved
            other.respond(offers[1], "accept")
        server.respond(offers[2], "accept")  # its batch checked the other's event and goes through
        with Desk.open(path) as other:
            other.respond(offers[3], "decline", reason="other")
        _edit(path, "UPDATE ledger_events SET payload = replace(payload, 'other', 'cost') "
                    "WHERE seq = (SELECT max(seq) FROM ledger_events)")
        head = server.store.head()
        with pytest.raises(IntegrityError, match="ledger verify"):
            server.respond(offers[4], "accept")
        assert server.store.head() == head, "nothing is appended to a broken chain"


def test_server_desk_refuses_when_its_verified_point_is_gone(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    with Desk.open(path, group_commit=True) as server:
        server.respond(offers[0], "accept")
        _edit(path, "DELETE FROM ledger_events WHERE seq = (SELECT max(seq) FROM ledger_events)")
        head = server.store.head()
        with pytest.raises(IntegrityError, match="since it was last verified"):
            server.respond(offers[1], "accept")
        assert server.store.head() == head


def test_concurrent_answers_from_two_processes_record_one_answer_per_offer(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    results: Counter[str] = Counter()
    lock = threading.Lock()
    with Desk.open(path, group_commit=True) as server, Desk.open(path) as other:
        def answer(desk: Desk, oid: str, who: str) -> None:
            try:
                desk.respond(oid, "accept", key=f"{who}:{oid}")
                outcome = "recorded"
            except ConflictError:
                outcome = "refused"
            with lock:
                results[outcome] += 1

        threads = [threading.Thread(target=answer, args=(desk, oid, who))
                   for oid in offers for desk, who in ((server, "a"), (server, "b"), (other, "c"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {"recorded": len(offers), "refused": 2 * len(offers)}
        answers = Counter(ev.offer_id for ev in server.store.read(types=["offer.accepted"]))
        assert set(answers.values()) == {1} and set(answers) == set(offers)
        assert server.verify().ok and server.view("T1").problems() == []


def test_shared_reads_still_see_every_event_recorded_before_the_call(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    with Desk.open(path, group_commit=True) as server, Desk.open(path) as other:
        assert server.view("T1").offers[offers[0]]["status"] == "offered"  # cached now
        stop = threading.Event()

        def readers() -> None:
            while not stop.is_set():
                server.view("T1")

        busy = [threading.Thread(target=readers) for _ in range(4)]
        for t in busy:
            t.start()
        try:
            for oid in offers:
                other.respond(oid, "accept")  # another process records ...
                assert server.view("T1").offers[oid]["status"] == "accepted"  # ... and the next read sees it
        finally:
            stop.set()
            for t in busy:
                t.join()


def test_keys_are_checked_once_per_process_and_never_kept_in_clear(tmp_path: Path) -> None:
    path, _ = _ledger(tmp_path)
    with Desk.open(path, group_commit=True) as server, Desk.open(path) as admin:
        ident, token = admin.create_key("participant", participant="KEN")
        ring = server.keys
        assert ring.authenticate(token) == ident and ring.authenticate(token) == ident
        assert ring.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # wrong secret
        held = repr(vars(ring))
        assert token not in held and token.split("_")[2] not in held, "the token is remembered only as an HMAC"
        admin.revoke_key(ident.key_id)  # in another process
        ring.cache_seconds = 0.0  # the next request reads the revocations again
        assert ring.authenticate(token) is None
        other_ident, other_token = admin.create_key("observer", name="olga")
        assert server.keys.authenticate(other_token) == other_ident
        server.revoke_key(other_ident.key_id)  # in this process: refused at once, whatever the cache time
        server.keys.cache_seconds = 3600.0
        assert server.keys.authenticate(other_token) is None


def test_readers_answers_and_a_round_step_at_once_never_wait_on_each_other_forever(tmp_path: Path) -> None:
    """A round step holds the round's lock while it reads the round; readers sharing a read need that
    lock to apply what they read. Both at once on one desk all finish, with one answer per offer."""
    import datetime as dt

    path, offers = _ledger(tmp_path)
    errors: list[BaseException] = []
    with Desk.open(path, group_commit=True) as server:
        server.view("T1")

        def run(work: object) -> None:
            try:
                work()  # type: ignore[operator]
            except ConflictError:
                pass  # an answer after the step lapsed its offer, or the other way round
            except BaseException as exc:
                errors.append(exc)

        def read() -> None:
            for _ in range(30):
                server.view("T1")

        jobs = [lambda oid=oid: server.respond(oid, "accept") for oid in offers]
        jobs += [read] * 4 + [lambda: server.advance("T1", dt.date(2021, 9, 2))] * 2
        threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "a thread is stuck"
        assert not errors, errors
        answers = Counter(ev.offer_id for ev in server.store.read() if ev.type in ("offer.accepted", "offer.lapsed"))
        assert set(answers.values()) == {1}
        assert server.verify().ok and server.view("T1").problems() == []
