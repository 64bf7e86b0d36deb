"""Commands refuse to append to a chain that changed since this machine last verified it, and
`ledger verify` replays the rounds too: a double offer or unbacked open doses fail it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dosewise.app import Desk
from dosewise.errors import IntegrityError
from dosewise.scenario import parse_scenario_text

SCENARIO = """
name: trust
participants: {include: [KEN, UGA, NPL]}
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}
round: {id: T1, opens: 2021-08-30, reallocation: pro-rata}
"""


def _ledger(tmp_path: Path) -> tuple[str, list[str]]:
    path = str(tmp_path / "l.db")
    with Desk.open(path, create=True) as desk:
        state = desk.open_round(parse_scenario_text(SCENARIO))
        offers = list(state.offers)
    return path, offers


def _edit(path: str, sql: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER IF EXISTS ledger_events_no_update")
        conn.execute("DROP TRIGGER IF EXISTS ledger_events_no_delete")
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for name in names:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(sql)


def test_an_edited_event_stops_the_next_answer(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    _edit(path, "UPDATE ledger_events SET payload = replace(payload, '\"doses\":', '\"doses\":1') WHERE seq = 3")
    with Desk.open(path) as desk:
        head = desk.store.head()
        with pytest.raises(IntegrityError, match="ledger verify"):
            desk.respond(offers[0], "accept")
        assert desk.store.head() == head


def test_deleted_last_events_stop_the_next_answer(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    _edit(path, "DELETE FROM ledger_events WHERE seq >= (SELECT max(seq) - 1 FROM ledger_events)")
    with Desk.open(path) as desk, pytest.raises(IntegrityError, match="since it was last verified"):
        desk.respond(offers[0], "accept")


def test_a_truncated_file_stops_the_next_answer(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        p = Path(path + suffix)
        if p.exists():
            p.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "round", "respond", offers[0], "--accept",
                           "--db", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "verify" in proc.stderr or "no such offer" in proc.stderr


def test_intact_ledger_is_checked_incrementally_and_answers_go_through(tmp_path: Path) -> None:
    path, offers = _ledger(tmp_path)
    with Desk.open(path) as desk:
        desk.respond(offers[0], "accept")
        desk.respond(offers[1], "decline", reason="other")
        assert desk.verify().ok


def test_verify_fails_on_a_round_that_does_not_balance(tmp_path: Path) -> None:
    """A forged second copy of an offer, appended with a correct link, passes the chain check but
    not the replay of the round."""
    from dosewise.ledger import NewEvent

    path, offers = _ledger(tmp_path)
    with Desk.open(path) as desk:
        first = next(desk.store.read(offer_id=offers[0]))
        desk.store.append([NewEvent(type="offer.made", actor="forger", round_id="T1", offer_id=offers[0] + "x",
                                    payload=dict(first.payload))])
        assert desk.verify().ok
        problems = desk.audit_rounds()["T1"]
        assert problems and "made twice" in problems[0]
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "ledger", "verify", "--db", path],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DOES NOT BALANCE" in proc.stdout
