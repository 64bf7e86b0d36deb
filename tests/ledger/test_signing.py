"""Key files, RFC 8785 signable form, signed events and the key registry."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
