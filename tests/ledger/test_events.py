"""The canonical form, the hash and event validation."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dosewise.errors import InputError
from dosewise.ledger import GENESIS_HASH, NewEvent, canonical_json, open_store
from dosewise.ledger.events import canonical_payload, row_hash

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
opt_text = st.none() | st.text(min_size=1, max_size=20)


@given(
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    ids=st.tuples(opt_text, opt_text, opt_text, opt_text, opt_text, opt_text),
    type_=st.text(min_size=1, max_size=20),
    actor=st.text(min_size=1, max_size=20),
    seq=st.integers(1, 10**12),
)
def test_fast_hash_equals_reference_canonical_json(payload, ids, type_, actor, seq) -> None:
    round_id, offer_id, lot_id, participant, key, slot = ids
    try:
        ev = NewEvent(type=type_, actor=actor, payload=payload, round_id=round_id, offer_id=offer_id,
                      lot_id=lot_id, participant=participant, idempotency_key=key, unique_slot=slot,
                      event_id="e")
        row = ev.to_row(seq, "2024-01-02T03:04:05.000006Z", GENESIS_HASH)
    except InputError:
        return  # lone surrogates in generated text are refused, as documented
    fields = {"seq": seq, "event_id": "e", "type": type_, "round_id": round_id, "offer_id": offer_id,
              "lot_id": lot_id, "participant": participant, "payload": payload, "actor": actor,
              "recorded_at": "2024-01-02T03:04:05.000006Z", "idempotency_key": key, "unique_slot": slot,
              "prev_hash": GENESIS_HASH}
    expected = hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
    assert row[13] == expected == row_hash(row)
    assert json.loads(row[7]) == json.loads(json.dumps(payload))


def test_recorded_event_hash_is_sha256_of_documented_form() -> None:
    store = open_store("memory")
    first, second = store.append([
        NewEvent(type="round.opened", actor="secretariat", round_id="R1", payload={"doses": 1_992_000}),
        NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id="O-PRK", participant="PRK",
                 payload={"doses": 1_992_000, "product": "AZD1222"}),
    ])
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    for ev in (first, second):
        assert ev.hash == hashlib.sha256(canonical_json(ev.hashed_fields()).encode()).hexdigest()
    assert (first.seq, second.seq) == (1, 2)


@pytest.mark.parametrize("payload, field", [
    ({"share": 0.25}, "payload.share"),
    ({"nested": [1, {"x": float("nan")}]}, "payload.nested[1].x"),
    ({"big": 2**64}, "payload.big"),
    ({"when": object()}, "payload.when"),
])
def test_payload_refuses_non_portable_values(payload, field) -> None:
    with pytest.raises(InputError) as info:
        canonical_payload(payload)
    assert info.value.field == field


@pytest.mark.parametrize("kwargs, field", [
    ({"type": "", "actor": "a"}, "type"),
    ({"type": "t", "actor": ""}, "actor"),
    ({"type": "t", "actor": "a", "offer_id": ""}, "offer_id"),
    ({"type": "t", "actor": "a", "round_id": 7}, "round_id"),
])
def test_new_event_validates_fields(kwargs, field) -> None:
    with pytest.raises(InputError) as info:
        NewEvent(**kwargs)
    assert info.value.field == field
