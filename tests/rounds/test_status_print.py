"""`round status` prints each lot's balance and words the problems of a lot that does not balance."""

from __future__ import annotations

import pytest

from dosewise import Rounds, load_demo, open_store
from dosewise.cli import rounds as cli_rounds


def _status(state: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    from rich.console import Console

    monkeypatch.setattr(cli_rounds, "console", Console(highlight=False, width=200, force_terminal=False))
    cli_rounds.print_status(state)  # type: ignore[arg-type]
    return capsys.readouterr().out


def test_status_words_problems_only_of_a_round_that_does_not_balance(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = Rounds(open_store("memory"))
    state = rounds.state(rounds.open(load_demo()))
    out = _status(state, capsys, monkeypatch)
    assert "does not balance" not in out and " NO " not in out
    assert out.count("yes") == len(state.lots)
    state.lots["AZ-2021H1"]["pool"] += 1  # a dose from nowhere
    lot = next(iter(o for o in state.offers.values() if o["lot"] == "SII-AZ-2021H1" and o["status"] == "offered"))
    state.lots["SII-AZ-2021H1"]["open"] -= lot["doses"]  # open doses that no longer match the open offers
    state.lots["SII-AZ-2021H1"]["pool"] += lot["doses"]
    out = _status(state, capsys, monkeypatch)
    assert "the round does not balance" in out
    assert "lot AZ-2021H1: open + accepted + pool + expired + buffer = 96,000,001 but supply is 96,000,000" in out
    assert "lot SII-AZ-2021H1: open doses" in out and "but open offers hold" in out
    assert out.count("NO") >= 2
