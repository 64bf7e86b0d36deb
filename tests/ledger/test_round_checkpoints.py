"""A ledger with its own key signs a checkpoint after every round step taken through the Desk."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dosewise.app import Desk
from dosewise.cli import main
from dosewise.errors import InputError
from dosewise.ledger import keys as ledger_keys
from dosewise.ledger.checkpoints import Checkpoint, stored_checkpoints, write_file
from dosewise.scenario import parse_scenario_text

SCENARIO = """
name: checkpoints
participants: {include: [KEN, UGA, NPL]}
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}
round: {id: C1, opens: 2021-08-30, reallocation: pro-rata, response_days: 7}
"""


def _stored(desk: Desk) -> list[Checkpoint]:
    out = []
    for _, cp in stored_checkpoints(desk.store):
        assert isinstance(cp, Checkpoint), cp
        out.append(cp)
    return out


def test_every_round_step_leaves_a_checkpoint_of_its_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "ledger.key"
    pub = ledger_keys.generate(key)
    monkeypatch.setenv("DOSEWISE_LEDGER_KEY", str(key))
    db = str(tmp_path / "l.db")
    heads = []
    with Desk.open(db, create=True) as desk:
        state = desk.open_round(parse_scenario_text(SCENARIO))
        heads.append(desk.head().seq)  # type: ignore[union-attr]
        offers = list(state.offers)
        desk.respond(offers[0], "decline", reason="short_shelf_life")  # an answer is not a round step
        assert [c.tree_size for c in _stored(desk)] == heads
        desk.advance(state.round_id, dt.date(2021, 9, 7))  # the other offers lapse; the pool is re-offered
        heads.append(desk.head().seq)  # type: ignore[union-attr]
        desk.advance(state.round_id, dt.date(2021, 9, 7))  # a date already reached records nothing
        desk.advance(state.round_id, dt.date(2021, 9, 20))
        heads.append(desk.head().seq)  # type: ignore[union-attr]
        stored = _stored(desk)
    assert len(set(heads)) == 3
    assert [c.tree_size for c in stored] == heads
    assert all(c.log_id == pub.key_id and not c.problems() for c in stored)
    monkeypatch.setenv("DOSEWISE_DB", db)
    for i, cp in enumerate(stored):
        path = tmp_path / f"cp{i}.json"
        write_file(cp, path)
        with pytest.raises(SystemExit) as info:
            main(["ledger", "verify", "--checkpoint", str(path)])
        out = capsys.readouterr().out
        assert info.value.code in (0, None), out
        assert f"checkpoint {path} (size {cp.tree_size}): ok" in out.replace("\n", "")


def test_no_ledger_key_no_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOSEWISE_LEDGER_KEY", raising=False)
    with Desk.open(str(tmp_path / "l.db"), create=True) as desk:
        state = desk.open_round(parse_scenario_text(SCENARIO))
        desk.advance(state.round_id, dt.date(2021, 9, 7))
        assert desk.head() is not None and _stored(desk) == []


def test_an_unusable_ledger_key_stops_the_step_before_it_is_recorded(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOSEWISE_LEDGER_KEY", str(tmp_path / "missing.key"))
    with Desk.open(str(tmp_path / "l.db"), create=True) as desk:
        with pytest.raises(InputError, match="no key file"):
            desk.open_round(parse_scenario_text(SCENARIO))
        assert desk.head() is None and _stored(desk) == []
