"""Store behaviour, identical on the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dosewise.errors import ConflictError, InputError
from dosewise.ledger import Event, LedgerView, NewEvent, Store, load_export, verify_rows

PARTICIPANTS = ["BTN", "MDV", "MNE", "PRK", "IND"]


def _offers(round_id: str, n: int) -> list[NewEvent]:
    return [NewEvent(type="offer.made", actor="secretariat", round_id=round_id, offer_id=f"{round_id}-O{i}",
                     lot_id="AZ-001", participant=PARTICIPANTS[i % 5], payload={"doses": 2400 * (i + 1)})
            for i in range(n)]


def test_empty_ledger(store: Store) -> None:
    assert store.head() is None
    assert list(store.read()) == []
    report = store.verify()
    assert report.ok and report.checked == 0 and report.head_seq is None


def test_append_assigns_seq_and_chains(store: Store) -> None:
    first = store.append(_offers("R1", 3))
    second = store.append(_offers("R2", 2))
    events = list(store.read())
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events == first + second
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert store.head() == events[-1]
    assert len({e.event_id for e in events}) == 5
    assert events[0].payload == {"doses": 2400}
    assert events[0].recorded_at.tzinfo is not None
    assert store.verify().ok


def test_read_filters_and_after_seq(store: Store) -> None:
    store.append(_offers("R1", 4) + _offers("R2", 3))
    store.append_one(NewEvent(type="offer.accepted", actor="BTN", round_id="R1", offer_id="R1-O0",
                              participant="BTN"))
    assert [e.seq for e in store.read(round_id="R2")] == [5, 6, 7]
    assert [e.seq for e in store.read(after_seq=5)] == [6, 7, 8]
    assert [e.type for e in store.read(offer_id="R1-O0")] == ["offer.made", "offer.accepted"]
    assert [e.seq for e in store.read(types=["offer.accepted"])] == [8]
    assert [e.seq for e in store.read(round_id="R1", types=["offer.made"], after_seq=2)] == [3, 4]


def test_idempotent_retry_records_once(store: Store) -> None:
    cmd = NewEvent(type="offer.accepted", actor="MDV", round_id="R1", offer_id="O1", participant="MDV",
                   payload={"doses": 2400}, idempotency_key="req-7f3a")
    first = store.append_one(cmd)
    retried = store.append_one(cmd)
    assert retried == first
    batch = store.append([cmd, NewEvent(type="note", actor="MDV", payload={"text": "thanks"})])
    assert batch[0] == first and batch[1].seq == 2
    assert [e.seq for e in store.read()] == [1, 2]


def test_same_key_different_content_conflicts(store: Store) -> None:
    store.append_one(NewEvent(type="offer.accepted", actor="MDV", offer_id="O1", idempotency_key="k"))
    with pytest.raises(ConflictError, match="already used for different content"):
        store.append_one(NewEvent(type="offer.declined", actor="MDV", offer_id="O1", idempotency_key="k"))
    assert len(list(store.read())) == 1


def test_duplicate_key_within_batch(store: Store) -> None:
    ev = NewEvent(type="offer.accepted", actor="MDV", offer_id="O1", idempotency_key="k")
    out = store.append([ev, ev])
    assert out[0] == out[1] and [e.seq for e in store.read()] == [1]
    other = NewEvent(type="offer.declined", actor="MDV", offer_id="O1", idempotency_key="k2")
    with pytest.raises(ConflictError):
        store.append([other, NewEvent(type="offer.accepted", actor="MDV", offer_id="O1",
                                      idempotency_key="k2")])


def test_unique_slot_first_answer_wins(store: Store) -> None:
    accept = NewEvent(type="offer.accepted", actor="PRK", participant="PRK", offer_id="O9",
                      unique_slot="offer:O9:response", idempotency_key="PRK-accept")
    decline = NewEvent(type="offer.declined", actor="PRK-2", participant="PRK", offer_id="O9",
                       unique_slot="offer:O9:response", payload={"reason": "cold chain"})
    won = store.append_one(accept)
    with pytest.raises(ConflictError, match=r"offer:O9:response.*already taken by event seq 1"):
        store.append_one(decline)
    assert store.append_one(accept) == won  # a retry of the winner is a replay, not a conflict
    assert store.find_slot("offer:O9:response") == won
    assert store.find_slot("offer:O8:response") is None
    assert [e.type for e in store.read()] == ["offer.accepted"]


def test_batch_is_all_or_nothing(store: Store) -> None:
    store.append_one(NewEvent(type="offer.accepted", actor="A", unique_slot="offer:O1:response"))
    batch = [*_offers("R1", 5), NewEvent(type="offer.declined", actor="B", unique_slot="offer:O1:response")]
    with pytest.raises(ConflictError):
        store.append(batch)
    assert [e.seq for e in store.read()] == [1]
    with pytest.raises(InputError):
        store.append([*_offers("R1", 2), NewEvent(type="bad", actor="A", payload={"x": 0.5})])
    assert [e.seq for e in store.read()] == [1]
    assert store.verify().ok


def test_precondition_runs_under_the_lock_and_can_abort(store: Store) -> None:
    store.append(_offers("R1", 2))
    seen: list[int | None] = []

    def no_answer_yet(view: LedgerView) -> None:
        head = view.head()
        seen.append(head.seq if head else None)
        if any(True for _ in view.read(offer_id="R1-O0", types=["offer.accepted", "offer.declined"])):
            raise ConflictError("R1-O0 already answered")

    answer = NewEvent(type="offer.accepted", actor="BTN", offer_id="R1-O0", idempotency_key="BTN-R1-O0")
    first = store.append_one(answer, precondition=no_answer_yet)
    assert seen == [2]
    other = NewEvent(type="offer.declined", actor="BTN", offer_id="R1-O0", payload={"reason": "shelf life"})
    with pytest.raises(ConflictError, match="already answered"):
        store.append_one(other, precondition=no_answer_yet)
    # a retry with the same key is a replay: the precondition is not consulted
    assert store.append_one(answer, precondition=no_answer_yet) == first
    assert seen == [2, 3]
    assert [e.seq for e in store.read()] == [1, 2, 3]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_round_trips(store: Store, tmp_path: Path, fmt: str) -> None:
    store.append(_offers("R1", 5))
    store.append_one(NewEvent(type="offer.declined", actor="MNE", offer_id="R1-O2", participant="MNE",
                              payload={"reason": "regulatory status",
                                       "detail": {"agency": "ALIMS", "ok": False}, "lots": ["AZ-001", None]},
                              idempotency_key="MNE-1",
                              unique_slot="offer:R1-O2:response"))
    out = tmp_path / f"ledger.{fmt}"
    assert store.export(out, fmt) == 6  # type: ignore[arg-type]
    back = load_export(out)
    assert back == list(store.read())
    assert verify_rows([e.to_row() for e in back]).ok
    if fmt == "jsonl":
        first = json.loads(out.read_text().splitlines()[0])
        assert first["payload"] == {"doses": 2400} and first["seq"] == 1
    if fmt == "parquet":
        assert pq.read_table(out).num_rows == 6


def test_events_are_immutable(store: Store) -> None:
    ev: Event = store.append_one(NewEvent(type="t", actor="a"))
    with pytest.raises(AttributeError):
        ev.seq = 5  # type: ignore[misc]


def test_every_backend_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store) and isinstance(store, LedgerView)


def test_public_names_do_not_drift() -> None:
    import dosewise.ledger as ledger

    def kind(name: str) -> int:  # isort order, as ruff keeps it: CONSTANTS, Classes, functions
        return 0 if name.isupper() else 1 if name[0].isupper() else 2

    assert ledger.__all__ == sorted(ledger.__all__, key=lambda n: (kind(n), n))
    assert all(hasattr(ledger, name) for name in ledger.__all__)
    public = {n for n in vars(ledger) if not n.startswith("_") and n not in ("annotations",)}
    modules = {"events", "export", "memory", "store", "sql", "schema", "pgserver", "open",
               "merkle", "tree", "keys", "signing", "checkpoints", "audit", "snapshots", "trust", "identities",
               "group", "walk", "gate"}
    assert public - modules == set(ledger.__all__)
