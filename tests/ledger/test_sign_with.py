"""A participant signs its answer with its own key file; once its key is registered, an answer in
its name without that signature is reported as forged by `ledger verify`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCENARIO = """name: signed
participants: {include: [KEN, PRK]}
lots: [{id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}]
policy: {name: covax-pro-rata, buffer: 0}
round: {id: S1, opens: 2021-08-30, reallocation: pro-rata}
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dosewise.cli", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


def test_signed_decline_verifies_and_an_unsigned_one_in_the_same_name_is_forged(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    assert run("round", "open", "s.yaml", "--db", "l.db", cwd=tmp_path).returncode == 0
    gen = run("keys", "gen", "--out", "prk.key", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    assert "PRIVATE" not in gen.stdout
    reg = run("keys", "register", "prk.key", "--identity", "PRK", "--role", "participant", "--db", "l.db",
              cwd=tmp_path)
    assert reg.returncode == 0, reg.stderr
    signed = run("round", "respond", "S1:CV:PRK:0", "--decline", "efficacy_concerns", "--wish",
                 "severely affected countries", "--sign-with", "prk.key", "--db", "l.db", cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    ok = run("ledger", "verify", "--db", "l.db", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # the operator answers Kenya's offer in PRK's name without PRK's key: verify calls it forged
    from dosewise.ledger import NewEvent, open_store

    store = open_store(str(tmp_path / "l.db"))
    store.append([NewEvent(type="ledger.note", actor="PRK", payload={"text": "PRK agrees to everything"})])
    store.close()
    bad = run("ledger", "verify", "--db", "l.db", cwd=tmp_path)
    assert bad.returncode == 1
    assert "forged" in (bad.stdout + bad.stderr).lower() or "signature" in (bad.stdout + bad.stderr).lower()
