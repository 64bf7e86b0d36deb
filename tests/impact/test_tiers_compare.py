"""tier_values for the optimiser, policy comparison, the CLI and the regression baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dosewise.impact import ImpactParams, compare_policies, tier_values
from dosewise.world import World


def test_tier_values_shapes_and_order(small_world: World) -> None:
    tv = tier_values(small_world, ImpactParams(days=120))
    assert tv.tiers == ("75+", "65-74", "50-64", "0-49")
    assert tv.sizes.shape == tv.deaths_averted_per_dose.shape == (small_world.n, 4)
    np.testing.assert_allclose(tv.sizes.sum(axis=1), small_world.population, rtol=1e-9)
    assert (tv.deaths_averted_per_dose > 0).all()
    # a dose to the 75+ averts more deaths than a dose to the under-50s everywhere
    assert (tv.deaths_averted_per_dose[:, 0] > tv.deaths_averted_per_dose[:, 3]).all()
    assert tv.product == "AZD1222"
    assert len(tv.frame()) == 4 * small_world.n


def test_compare_policies_table(small_world: World) -> None:
    frame = compare_policies(small_world, ["covax-pro-rata"], ImpactParams(days=90))
    assert list(frame.index) == ["covax-pro-rata"]
    row = frame.loc["covax-pro-rata"]
    assert row["deaths_averted"] > 0
    assert row["deaths_averted_per_100_doses"] == pytest.approx(100 * row["deaths_averted"] / row["doses_administered"])


def test_cli_compare_demo_writes_plot_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.cli import main

    png, csv = tmp_path / "cmp.png", tmp_path / "cmp.csv"
    main(["compare", "--demo", "--days", "60", "--plot", str(png), "--out", str(csv)])
    out = capsys.readouterr().out
    assert "covax-pro-rata" in out and "deaths averted" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "deaths_averted" in csv.read_text()


def test_cli_unknown_policy_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["compare", "--demo", "--days", "30", "--policies", "no-such-policy"])
    assert exc.value.code == 2
    assert "unknown policy" in capsys.readouterr().err


def test_regression_baseline() -> None:
    from dosewise.impact.regression import baseline_figures

    stored = json.loads((Path(__file__).parent / "baseline.json").read_text())
    now = baseline_figures()
    for key in ("deaths_averted", "deaths_no_vaccine"):
        assert now[key].keys() == stored[key].keys()
        for code, v in stored[key].items():
            assert now[key][code] == pytest.approx(v, rel=1e-6), (key, code)
    for key, v in stored["summary"].items():
        assert now["summary"][key] == pytest.approx(v, rel=1e-6, nan_ok=True), key
