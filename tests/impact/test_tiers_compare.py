"""tier_values for the optimiser, policy comparison, the CLI and the regression baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dosewise.compare import compare_policies
from dosewise.impact import ImpactParams, tier_values
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


def run_cli(argv: list[str]) -> None:
    """Run the CLI as a user would; it exits (standalone Typer), successfully here."""
    from dosewise.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code in (0, None)


def test_cli_compare_demo_writes_plot_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    png, csv = tmp_path / "cmp.png", tmp_path / "cmp.csv"
    run_cli(["compare", "--demo", "--days", "60", "--plot", str(png), "--out", str(csv)])
    out = capsys.readouterr().out
    assert "covax-pro-rata" in out and "deaths averted" in out
    # every optimal variant is among the defaults
    assert "optimal-floor-50" in out and "optimal-floor-100" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "deaths_averted" in csv.read_text()


def test_cli_unknown_policy_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["compare", "--demo", "--days", "30", "--policies", "no-such-policy"])
    assert exc.value.code == 2
    assert "unknown policy" in capsys.readouterr().err


def test_regression_baseline() -> None:
    from dosewise.regression import baseline_figures

    stored = json.loads((Path(__file__).parent / "baseline.json").read_text())
    now = baseline_figures()
    for key in ("deaths_averted", "deaths_no_vaccine"):
        assert now[key].keys() == stored[key].keys()
        for code, v in stored[key].items():
            assert now[key][code] == pytest.approx(v, rel=1e-6), (key, code)
    # summary figures are counts of people and doses: a thousandth of one is below any meaning
    # (``doses_unused`` is a rounding residue of about 1e-9 that a relative check alone would chase)
    for key, v in stored["summary"].items():
        assert now["summary"][key] == pytest.approx(v, rel=1e-6, abs=1e-3, nan_ok=True), key


def test_run_policies_inequality_and_closed_loop(small_world: World) -> None:
    from dosewise.compare import comparison_table, run_policies

    runs = run_policies(small_world, ["covax-pro-rata", "optimal"], ImpactParams(days=90))
    frame = comparison_table(runs)
    assert set(runs.allocations) == set(frame.index)
    # the reference is pro rata itself: nobody below it, and its LP columns are empty
    assert frame.loc["covax-pro-rata", "share_below_pro_rata"] == 0.0
    assert np.isnan(frame.loc["covax-pro-rata", "lp_deaths_averted"])
    free = frame.loc["optimal"]
    # pure efficiency is less equal than pro rata
    assert frame.loc["covax-pro-rata", "gini_doses_per_capita"] < free["gini_doses_per_capita"] <= 1.0
    assert free["lp_gap"] == pytest.approx(free["lp_deaths_averted"] - free["deaths_averted"])
    # the optimal variants optimised compare's own simulation (90 days): value curves, re-linearised
    notes = runs.allocations["optimal"].notes
    assert notes["iterations"] >= 1 and abs(notes["lp_gap_share"]) < 0.02
    assert free["deaths_averted"] >= frame.loc["covax-pro-rata", "deaths_averted"]
    assert free["lp_deaths_averted"] == pytest.approx(runs.allocations["optimal"].notes["objective_rounded"])


def test_optimal_in_compare_follows_compare_r0(small_world: World) -> None:
    from dosewise.compare import compare_policies

    low = compare_policies(small_world, ["optimal"], ImpactParams(days=90, r0=1.3))
    high = compare_policies(small_world, ["optimal"], ImpactParams(days=90, r0=3.0))
    # a faster epidemic makes every dose worth more, in the LP's estimate as in the simulation
    assert high.loc["optimal", "lp_deaths_averted"] > low.loc["optimal", "lp_deaths_averted"]


def test_cli_compare_defaults_need_weighted_with_who(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    csv = tmp_path / "cmp.csv"
    run_cli(["compare", "--demo", "--days", "60", "--who", str(who), "--out", str(csv)])
    out = capsys.readouterr().out
    assert "Gini" in out and "below pro" in out
    import pandas as pd

    frame = pd.read_csv(csv, index_col="policy")
    assert list(frame.index) == [
        "covax-pro-rata", "covax-need-weighted", "optimal", "optimal-floor-50", "optimal-floor-100",
    ]
    assert frame.loc["covax-need-weighted", "share_below_pro_rata"] > 0
    assert frame.loc["optimal-floor-100", "share_below_pro_rata"] <= 0.05
