"""Against a real uvicorn on 127.0.0.1 (the in-process client does not stream): the event stream
and its resumption, and participants answering at once while observers poll."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tests.service.conftest import SCENARIO, Ledger, make_ledger, start_server, stop_server

from dosewise import app as api
from dosewise.app import Desk

PARTICIPANTS = ["KEN", "UGA", "PRK", "BGD", "NPL", "MNG"]


def _serve(ledger_url: str, workers: int) -> Iterator[tuple[Ledger, str]]:
    ledger = make_ledger(ledger_url)
    with Desk.open(ledger_url) as desk:
        for code in PARTICIPANTS:
            _, ledger.tokens[code] = desk.create_key("participant", participant=code)
        desk.propose_round(api.load_text(SCENARIO), identity="carla", round_id="T1")
        desk.approve_round("T1", identity="rita")
    server = start_server(ledger_url, workers=workers)
    try:
        yield ledger, server.base
    finally:
        stop_server(server)


@pytest.fixture
def live(ledger_url: str) -> Iterator[tuple[Ledger, str]]:
    """One worker process."""
    yield from _serve(ledger_url, 1)


@pytest.fixture
def live2(ledger_url: str) -> Iterator[tuple[Ledger, str]]:
    """Two worker processes sharing the ledger."""
    yield from _serve(ledger_url, 2)


def read_events(lines: Iterator[str], until: Any) -> Iterator[dict[str, Any]]:
    """Parse a server-sent event stream, yielding {id, event, data} until ``until(event)`` is true."""
    fields: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                event = {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
                yield event
                if until(event):
                    return
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


def test_event_stream_live_and_resumed(live: tuple[Ledger, str]) -> None:
    ledger, base = live
    with httpx.Client(base_url=base, timeout=20) as client:
        head = client.get("/ledger/head", headers=ledger.auth("observer")).json()["seq"]
        with client.stream("GET", "/events", headers=ledger.auth("observer")) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            seen = list(read_events(lines, lambda e: e["id"] >= head))
            assert [e["id"] for e in seen] == list(range(1, head + 1))
            # an answer recorded while the stream is open arrives on it
            r = client.post("/offers/T1:CV:PRK:0/decline", headers=ledger.auth("participant"),
                            json={"reason": "efficacy_concerns", "wish": "severely affected countries"})
            assert r.status_code == 200
            live_events = list(read_events(lines, lambda e: e["event"] == "offer.declined"))
            assert live_events[-1]["id"] == r.json()["seq"] == head + 1
            assert live_events[-1]["data"]["actor"].startswith("participant:PRK:")
        # resume after a lost connection: everything after Last-Event-ID, nothing twice
        resume = {**ledger.auth("observer"), "Last-Event-ID": str(head - 2)}
        with client.stream("GET", "/events", headers=resume) as stream:
            again = list(read_events(stream.iter_lines(), lambda e: e["id"] >= head + 1))
        assert [e["id"] for e in again] == [head - 1, head, head + 1]
        # a participant's stream holds only the events about its own offers
        with client.stream("GET", "/events", headers=ledger.auth("KEN")) as stream:
            own = list(read_events(stream.iter_lines(), lambda e: e["data"]["offer_id"] == "T1:PF:KEN:0"))
        assert own and {e["data"]["participant"] for e in own} == {"KEN"}
        bad = client.get("/events", headers={**resume, "Last-Event-ID": "x"})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


def test_participants_answer_at_once_while_observers_poll(live2: tuple[Ledger, str]) -> None:
    ledger, base = live2
    with httpx.Client(base_url=base, timeout=30) as client:
        offers = client.get("/rounds/T1/offers", headers=ledger.auth("observer")).json()["items"]
    assert len(offers) >= len(PARTICIPANTS)
    stop = threading.Event()
    polls: list[int] = []

    def poll() -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            while not stop.is_set():
                polls.append(c.get("/rounds/T1", headers=ledger.auth("observer")).status_code)

    def answer(offer: dict[str, Any], attempt: int) -> int:
        # two racing answers per offer, each with its own idempotency key: exactly one is recorded
        action = "accept" if offer["participant"] != "PRK" else "decline"
        body = {"reason": "efficacy_concerns"} if action == "decline" else None
        headers = {**ledger.auth(offer["participant"]), "Idempotency-Key": f"{offer['offer']}-{attempt}"}
        with httpx.Client(base_url=base, timeout=30) as c:
            return c.post(f"/offers/{offer['offer']}/{action}", json=body, headers=headers).status_code

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for t in pollers:
        t.start()
    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = list(pool.map(lambda job: answer(*job), [(o, a) for o in offers for a in (1, 2)]))
    finally:
        stop.set()
        for t in pollers:
            t.join()
    pairs = [sorted(codes[i:i + 2]) for i in range(0, len(codes), 2)]
    assert all(p == [200, 409] for p in pairs), pairs
    assert polls and set(polls) == {200}
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/ledger/verify", headers=ledger.auth("observer")).json()["ok"]
        status = client.get("/rounds/T1", headers=ledger.auth("observer")).json()
        assert status["balanced"] and status["problems"] == []
        events = client.get("/ledger/events?round=T1&limit=1000", headers=ledger.auth("observer")).json()["items"]
    answers = [e["offer_id"] for e in events if e["type"] in ("offer.accepted", "offer.declined")]
    assert sorted(answers) == sorted(o["offer"] for o in offers)


def test_answers_sent_in_pieces_are_read_whole(live: tuple[Ledger, str]) -> None:
    """A body that arrives in several pieces (chunked) is read whole: a decline in three pieces is
    recorded, and one past the short path's 64 KiB is passed on to the app, which
    refuses its too-long note and records nothing."""
    ledger, base = live
    obs = ledger.auth("observer")
    with httpx.Client(base_url=base, timeout=30) as client:
        offers = client.get("/rounds/T1/offers?participant=PRK", headers=obs).json()["items"]
        ken = client.get("/rounds/T1/offers?participant=KEN", headers=obs).json()["items"]
        body = json.dumps({"reason": "efficacy_concerns", "note": "interested in other products",
                           "wish": "severely affected countries"}).encode()
        pieces = [body[:7], body[7:40], body[40:]]
        prk = {"Authorization": f"Bearer {ledger.tokens['PRK']}", "Content-Type": "application/json"}
        for _ in range(2):  # the first use of the key is checked by the app; the second takes the short path
            r = client.post(f"/offers/{offers[0]['offer']}/decline", content=iter(pieces), headers=prk)
        assert r.status_code == 409, r.text  # the second: already answered
        first = client.get(f"/offers/{offers[0]['offer']}", headers=obs).json()
        assert first["status"] == "declined"
        head = client.get("/ledger/head", headers=obs).json()["seq"]
        big = json.dumps({"reason": "other", "note": "x" * 70_000}).encode()
        kenh = {"Authorization": f"Bearer {ledger.tokens['KEN']}", "Content-Type": "application/json"}
        r = client.post(f"/offers/{ken[0]['offer']}/decline", headers=kenh,
                        content=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]))
        assert r.status_code == 422 and "note" in r.json()["detail"], r.text
        assert client.get("/ledger/head", headers=obs).json()["seq"] == head, "nothing recorded"
        r = client.post(f"/offers/{ken[0]['offer']}/accept", headers=kenh)
        assert r.status_code == 200 and r.json()["type"] == "offer.accepted", r.text
