"""A round holding a product without a sourced efficacy is still valued: those doses are left out, and said so."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dosewise import app
from dosewise.allocation import Allocation
from dosewise.cli import main
from dosewise.ledger import open_store

ROUND = "demo-coronavac-2021-08"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    with app.Desk(open_store(str(path)), actor="covax-demo") as desk:
        app.run_demo(desk, impact=False)  # records the bilateral Sputnik V lot, which has no efficacy_severe
    return path


def _drop_product(a: Allocation, product: str) -> Allocation:
    keep = (a.lots["product"].astype(str) != product).to_numpy()
    return Allocation(a.policy, a.participants, a.lots[keep], a.doses[:, keep], a.buffer[keep], a.remainder[keep])


def test_compare_round_values_what_it_can_and_names_what_it_left_out(
        demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--round", ROUND, "--db", str(demo_db)])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    assert info.value.code == 0, err
    text = " ".join(out.split())
    assert "Sputnik V" in text and "1,000,000 doses" in text and "not valued" in text
    assert "ImpactParams" not in out + err and "np.float64" not in out + err
    # the figures are those of the round without the bilateral lot at all
    with app.Desk.open(str(demo_db)) as desk:
        held = desk.round_allocation(ROUND)
    assert "Gam-COVID-Vac" in set(held.allocation.lots["product"].astype(str))
    expected = app.compare(held.scenario, policies=[],
                           allocations={"held": _drop_product(held.allocation, "Gam-COVID-Vac")})
    got = app.compare(held.scenario, policies=[], allocations={"held": held.allocation})
    assert any("not valued" in n for n in got.notes)
    assert np.isclose(got.frame.loc["held", "deaths_averted"], expected.frame.loc["held", "deaths_averted"])
    assert f"{expected.frame.loc['held', 'deaths_averted']:,.0f}" in text
