"""``dosewise ledger verify|export|log``."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.cli_run import run_cli

from dosewise.ledger import NewEvent, load_export, open_store


@pytest.fixture
def ledger_db(tmp_path: Path) -> Path:
    path = tmp_path / "dosewise.db"
    store = open_store(str(path))
    store.append([NewEvent(type="round.noted", actor="secretariat", round_id="R1", payload={"doses": 4800}),
                  NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id="O1",
                           participant="BTN", payload={"doses": 2400}),
                  NewEvent(type="offer.made", actor="secretariat", round_id="R2", offer_id="O2",
                           participant="MDV", payload={"doses": 2400})])
    store.close()
    return path


def test_verify_ok_then_tampered(ledger_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ledger", "verify", "--db", str(ledger_db)], capsys)
    assert code == 0 and "events checked: 3" in out and "OK" in out
    engine = sa.create_engine(f"sqlite:///{ledger_db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER ledger_events_no_update")
        conn.exec_driver_sql("UPDATE ledger_events SET participant = 'PRK' WHERE seq = 2")
    engine.dispose()
    code, out, _ = run_cli(["ledger", "verify", "--db", str(ledger_db)], capsys)
    assert code == 1 and "TAMPERED at seq 2" in out and "events checked: 1" in out


def test_default_db_from_environment(ledger_db: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSEWISE_DB", str(ledger_db))
    code, out, _ = run_cli(["ledger", "verify"], capsys)
    assert code == 0 and "events checked: 3" in out


def test_missing_db_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOSEWISE_DB", raising=False)
    code, out, _ = run_cli(["ledger", "verify"], capsys)
    assert code == 1 and "no ledger at dosewise.db" in out
    assert not (tmp_path / "dosewise.db").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export(ledger_db: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / f"out.{fmt}"
    code, out, _ = run_cli(["ledger", "export", "--format", fmt, "--out", str(out_file), "--db", str(ledger_db)],
                        capsys)
    assert code == 0 and "wrote 3 events" in out
    store = open_store(str(ledger_db))
    assert load_export(out_file) == list(store.read())
    store.close()


def test_log_filters_by_round_and_limits(ledger_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["ledger", "log", "--db", str(ledger_db), "--round", "R1", "--limit", "1"], capsys)
    assert code == 0 and "1 shown" in out and "offer.made" in out and "BTN" in out
    assert "MDV" not in out and "round.noted" not in out
