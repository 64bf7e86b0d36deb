"""Answers to offers served on the short path (:mod:`dosewise.service.hot`) are the answers the
declared routes give: the same requests sent to two identical ledgers, one app with the short path
and one without, get the same status, content type and body (the event's times and hashes aside),
and the short path serves exactly the ordinary requests (a checked participant key, a valid offer
id, key header and body), passing every other one on to the app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import Ledger, fresh_database, make_ledger, open_round

from dosewise.app import Desk
from dosewise.service.app import create_app
from dosewise.service.settings import Settings

DECLINE = {"reason": "efficacy_concerns", "note": "<b>doses</b> to where they are needed\u00a0— «severely» affected",
           "wish": "severely affected countries"}
VOLATILE = {"recorded_at", "hash", "prev_hash", "event_id"}
"""Fields of an event that differ between two ledgers recording the same answers."""


@pytest.fixture(params=["sqlite", "postgresql"])
def twins(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[tuple[Ledger, TestClient, Any]]]:
    """Two identical ledgers with a proposed and approved round: the first served with the short
    path, the second without."""
    out = []
    with ExitStack() as stack:
        for i, short in enumerate((True, False)):
            url = (str(tmp_path / f"ledger{i}.db") if request.param == "sqlite"
                   else fresh_database(request.getfixturevalue("postgres_url")))
            ledger = make_ledger(url)
            desk = stack.enter_context(Desk.open(url))
            desk.keys.cache_seconds = 3600.0  # revocations are read once: no request passes on for that
            app = create_app(Settings(db=url, short_answers=short), desk=desk)
            client = stack.enter_context(TestClient(app))
            open_round(ledger, client)
            for label in ledger.tokens:  # each key checked once, as a running server has
                assert client.get("/me", headers=ledger.auth(label)).status_code == 200
            out.append((ledger, client, app))
        yield out


def _offers(client: TestClient, ledger: Ledger, code: str) -> list[str]:
    items = client.get(f"/rounds/T1/offers?participant={code}", headers=ledger.auth("observer")).json()["items"]
    return [str(o["offer"]) for o in items]


def _view(r: Any, ledger: Ledger) -> tuple[int, str, Any]:
    """An answer's status, type and body, the volatile event fields dropped and key ids (in actors)
    named by their label."""
    text = r.text
    for label, key_id in ledger.key_ids.items():
        text = text.replace(key_id, label)
    body = json.loads(text)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    return r.status_code, r.headers["content-type"], body


def test_short_path_answers_as_the_routes_do(twins: list[tuple[Ledger, TestClient, Any]]) -> None:
    (la, ca, app_a), (lb, cb, app_b) = twins
    prk, ken = _offers(ca, la, "PRK"), _offers(ca, la, "KEN")
    assert prk == _offers(cb, lb, "PRK") and ken == _offers(cb, lb, "KEN") and len(ken) >= 2
    big = {"reason": "other", "note": "x" * 70_000}
    # (who, method path, body or None, extra headers, raw body, served on the short path)
    cases: list[tuple[str | None, str, Any, dict[str, str], bytes | None, bool]] = [
        ("other-participant", f"/offers/{prk[0]}/decline", DECLINE, {}, None, True),  # KEN on PRK's offer: 403
        ("participant", f"/offers/{prk[0]}/decline", DECLINE, {"Idempotency-Key": "prk-1"}, None, True),
        ("participant", f"/offers/{prk[0]}/decline", DECLINE, {"Idempotency-Key": "prk-1"}, None, True),  # retry
        ("participant", f"/offers/{prk[0]}/accept", None, {}, None, True),  # already answered: 409
        ("other-participant", f"/offers/{ken[0]}/accept", None, {}, None, True),
        ("other-participant", f"/offers/{ken[1]}/accept", {"doses": 1000, "note": "cold chain for 1,000"},
         {}, None, True),  # a partial acceptance
        ("other-participant", "/offers/T1-NOPE-0/accept", None, {}, None, True),  # unknown offer: 404
        ("other-participant", f"/offers/{ken[1]}/accept", None, {"Idempotency-Key": "bad key"}, None, False),
        ("other-participant", f"/offers/{ken[1]}/accept", None, {"Idempotency-Key": "k" * 201}, None, False),
        ("other-participant", f"/offers/{ken[1]}/accept", None, {"Content-Type": "application/json"},
         b"{not json", False),
        ("other-participant", f"/offers/{ken[1]}/decline", None, {"Content-Type": "application/json"},
         b'{"reason": "other", "note": NaN}', False),
        ("other-participant", f"/offers/{ken[1]}/decline", {"note": "no reason"}, {}, None, False),
        ("other-participant", f"/offers/{ken[1]}/decline", {"reason": "dislike"}, {}, None, False),
        ("other-participant", f"/offers/{ken[1]}/accept", {"doses": 0}, {}, None, False),
        ("other-participant", f"/offers/{ken[1]}/accept", {"extra": 1}, {}, None, False),
        ("other-participant", f"/offers/{ken[1]}/accept", None, {"Content-Type": "application/json"}, b"[1]", False),
        ("other-participant", f"/offers/{ken[1]}/decline", None, {"Content-Type": "text/plain"},
         b'{"reason": "other"}', False),
        ("other-participant", f"/offers/{ken[1]}/decline", big, {}, None, False),  # beyond the short path's body
        ("other-participant", "/offers/bad%20id/accept", None, {}, None, False),
        ("observer", f"/offers/{ken[1]}/accept", None, {}, None, False),  # a reader may not answer: 403
        (None, f"/offers/{ken[1]}/accept", None, {}, None, False),  # no key: 401
        (None, f"/offers/{ken[1]}/accept", None, {"Authorization": "Bearer dw_000000000000_nope"}, None, False),
        ("other-participant", f"/offers/{ken[1]}/decline", DECLINE, {}, None, True),  # part accepted: 409
    ]
    for who, path, body, headers, raw, short in cases:
        before = app_a.state.short_answered
        answers = []
        for ledger, client in ((la, ca), (lb, cb)):
            h = {**(ledger.auth(who) if who else {}), **headers}
            if raw is not None:
                answers.append(client.post(path, content=raw, headers=h))
            else:
                answers.append(client.post(path, json=body, headers=h) if body is not None
                               else client.post(path, headers=h))
        a, b = _view(answers[0], la), _view(answers[1], lb)
        assert a == b, (who, path)
        assert a[0] < 500, (who, path, a)
        assert app_a.state.short_answered - before == (1 if short else 0), (who, path, "short path taken?")
    assert app_b.state.short_answered == 0, "the short path is off in the second app"
    for ledger, client in ((la, ca), (lb, cb)):
        v = client.get("/ledger/verify", headers=ledger.auth("observer"))
        assert v.status_code == 200 and v.json()["ok"], v.text
    heads = [c.get("/ledger/head", headers=lg.auth("observer")).json()["seq"] for lg, c in ((la, ca), (lb, cb))]
    assert heads[0] == heads[1], "both ledgers recorded the same events"


def test_revoked_key_is_refused_on_the_short_path(twins: list[tuple[Ledger, TestClient, Any]]) -> None:
    (ledger, client, app), _ = twins
    ken = _offers(client, ledger, "KEN")
    r = client.post(f"/keys/{ledger.key_ids['other-participant']}/revoke", headers=ledger.auth("admin"))
    assert r.status_code == 200, r.text
    before = app.state.short_answered
    r = client.post(f"/offers/{ken[0]}/accept", headers=ledger.auth("other-participant"))
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert app.state.short_answered == before
    assert client.get(f"/offers/{ken[0]}", headers=ledger.auth("observer")).json()["status"] == "offered"


def test_short_path_matches_the_path_the_routes_match(twins: list[tuple[Ledger, TestClient, Any]]) -> None:
    """Behind a proxy prefix (``uvicorn --root-path``), the path the app routes is the request's path
    without the prefix: the short path takes an answer sent under the prefix, and never one that is
    an answer's path only with the prefix counted in (the routes answer 404 and record nothing)."""
    (la, ca, app_a), (lb, cb, app_b) = twins
    ken = _offers(ca, la, "KEN")
    assert ken == _offers(cb, lb, "KEN")
    # (root path, request path, served on the short path)
    cases = [("/api", f"/api/offers/{ken[0]}/accept", True),
             (f"/offers/{ken[1]}", f"/offers/{ken[1]}/accept", False),  # routed as /accept: no such route
             ("/api", f"/api/offers/{ken[0]}/accept", True)]  # already answered: 409
    for root, path, short in cases:
        before = app_a.state.short_answered
        answers = [TestClient(app, root_path=root).post(path, headers=ledger.auth("other-participant"))
                   for ledger, app in ((la, app_a), (lb, app_b))]
        assert _view(answers[0], la) == _view(answers[1], lb), (root, path)
        assert app_a.state.short_answered - before == (1 if short else 0), (root, path, "short path taken?")
    assert [a.status_code for a in answers] == [409, 409]
    for ledger, client in ((la, ca), (lb, cb)):
        assert client.get(f"/offers/{ken[1]}", headers=ledger.auth("observer")).json()["status"] == "offered"
