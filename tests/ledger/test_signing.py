"""Key files, RFC 8785 signable form, signed events and the key registry."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dosewise.errors import InputError
from dosewise.ledger import NewEvent, Store
from dosewise.ledger import keys as ledger_keys
from dosewise.ledger.audit import verify_ledger
from dosewise.ledger.signing import Registry, Signer, canonical, registration, revocation, signable_bytes

# RFC 8785 §3.2.2: the sample input and its canonical form
RFC8785_INPUT = r'''{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}'''
RFC8785_OUTPUT = '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' \
                 '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'


def test_canonical_form_is_rfc8785() -> None:
    assert canonical(json.loads(RFC8785_INPUT)).decode("utf-8") == RFC8785_OUTPUT


def test_key_file_is_private_and_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "prk.key"
    pub = ledger_keys.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "prk.key.pub").read_text().strip() == pub.b64
    pem = path.read_bytes()
    assert b"PRIVATE KEY" in pem
    with pytest.raises(InputError, match="already exists"):
        ledger_keys.generate(path)
    assert path.read_bytes() == pem
    assert ledger_keys.public_key(ledger_keys.load_private(path)) == pub
    os.chmod(path, 0o644)
    with pytest.raises(InputError, match="group or others") as info:
        ledger_keys.load_private(path)
    assert pem.decode() not in str(info.value)


def test_a_file_that_is_not_a_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWRhdGE=\n-----END PRIVATE KEY-----\n")
    os.chmod(path, 0o600)
    with pytest.raises(InputError) as info:
        ledger_keys.load_private(path)
    assert "c2VjcmV0" not in str(info.value)


def test_signature_covers_the_decision_not_the_store_fields(store: Store) -> None:
    prk = Signer(Ed25519PrivateKey.generate())
    store.append_one(registration(prk, "PRK", "participant"))
    signed = prk.sign(NewEvent(type="offer.declined", actor="PRK", offer_id="O1", payload={"doses": 1_992_000},
                               idempotency_key="resp-O1"))
    assert prk.sign(NewEvent(type="offer.declined", actor="PRK", offer_id="O1", payload={"doses": 1_992_000},
                             idempotency_key="resp-O1")) == signed  # a retry signs identically
    ev = store.append_one(signed)
    assert store.append_one(signed) == ev  # and records once
    assert ev.payload["signature"]["key_id"] == prk.public.key_id
    assert prk.public.verify(base64.b64decode(ev.payload["signature"]["sig"]), signable_bytes(ev))
    report = verify_ledger(store)
    assert report.ok and report.signatures_checked == 2


def test_integers_beyond_json_doubles_cannot_be_signed() -> None:
    prk = Signer(Ed25519PrivateKey.generate())
    with pytest.raises(InputError, match="cannot be signed"):
        prk.sign(NewEvent(type="t", actor="PRK", payload={"doses": 2**60}))


def test_rotation_and_revocation(store: Store) -> None:
    old, new = Signer(Ed25519PrivateKey.generate()), Signer(Ed25519PrivateKey.generate())
    store.append_one(registration(old, "BTN", "participant"))
    store.append_one(old.sign(NewEvent(type="offer.accepted", actor="BTN", offer_id="O1")))
    store.append_one(registration(old, "BTN", "participant", new_key=new.public))  # rotation, signed by old
    store.append_one(new.sign(NewEvent(type="offer.accepted", actor="BTN", offer_id="O2")))
    assert verify_ledger(store).ok
    store.append_one(old.sign(NewEvent(type="offer.accepted", actor="BTN", offer_id="O3")))  # old key: no longer
    report = verify_ledger(store)
    assert [f.seq for f in report.forged] == [5] and "not BTN's key valid here" in report.forged[0].reason
    store.append_one(revocation(new, "BTN", new.public.key_id))
    store.append_one(new.sign(NewEvent(type="offer.accepted", actor="BTN", offer_id="O4")))
    report = verify_ledger(store)
    assert [f.seq for f in report.forged] == [5, 7] and "no active key" in report.forged[1].reason


def test_registry_reports_key_history() -> None:
    reg = Registry()
    assert not reg.registered("PRK") and reg.key_at("PRK", 5) is None


def test_signed_event_without_registered_key_is_reported(store: Store) -> None:
    stranger = Signer(Ed25519PrivateKey.generate())
    store.append_one(stranger.sign(NewEvent(type="donation.pledged", actor="donor-X", payload={"doses": 100})))
    report = verify_ledger(store)
    assert not report.ok and "no registered key" in report.forged[0].reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_fast_canonical_form_equals_the_rfc8785_package(value: object) -> None:
    try:
        expected: bytes | None = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        expected = None
    if expected is None:
        with pytest.raises(InputError):
            canonical(value)
    else:
        assert canonical(value) == expected


def test_keys_outside_the_bmp_sort_as_rfc8785_says() -> None:
    value = {"\U0001f600": 1, "\ufb33": 2, "a": 3}  # UTF-16 order differs from code point order here
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\ufb33".encode()) > canonical(value).index("\U0001f600".encode())


def test_signatures_checked_in_worker_processes_catch_a_forgery() -> None:
    from dosewise.ledger import MemoryStore

    store = MemoryStore()
    signers = {c: Signer(Ed25519PrivateKey.generate()) for c in ("AFG", "BGD", "PRK")}
    for code, signer in signers.items():
        store.append_one(registration(signer, code, "participant"))
    store.append([signers[c].sign(NewEvent(type="offer.accepted", actor=c, offer_id=f"O{i}"))
                  for i in range(40) for c in signers])
    assert (r := verify_ledger(store, workers=2, chunk=16)).ok and r.signatures_checked == 123
    i = next(k for k, row in enumerate(store._rows) if row[8] == "PRK" and row[4] == "O33")
    payload = json.loads(store._rows[i][7])
    payload["note"] = "added later"  # content changed after signing; the chain is rebuilt to hide it
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    rows = [*store._rows[:i], (*store._rows[i][:7], text, *store._rows[i][8:]), *store._rows[i + 1:]]
    from dosewise.ledger.events import row_hash

    prev, out = store._rows[i - 1][13], list(rows[:i])
    for row in rows[i:]:
        head = (*row[:12], prev)
        prev = row_hash(head)
        out.append((*head, prev))
    store._rows[:] = out
    report = verify_ledger(store, workers=2, chunk=16)
    assert [(f.seq, f.actor, f.type) for f in report.forged] == [(i + 1, "PRK", "offer.accepted")]
    assert "does not verify" in report.forged[0].reason
