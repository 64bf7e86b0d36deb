"""What the allocation table says beside its rows: where populations came from, how many rows are hidden."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dosewise import app
from dosewise.cli.allocate import print_allocation

SCENARIO = """name: t
participants:
  include: [KEN, UGA, TZA, TUV]
  overrides: {TUV: {population: 11792, population_source: "UN WPP 2019, 2020 estimate", age_structure_like: KIR}}
lots:
  - {id: L1, product: AZD1222, doses: 1000000, available: 2021-03-01, expiry: 2021-09-01}
"""


def _printed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, result: app.Allocated,
             **kwargs: object) -> str:
    from rich.console import Console

    monkeypatch.setattr("dosewise.cli.allocate.console", Console(width=400, force_terminal=False))
    print_allocation(result, **kwargs)  # type: ignore[arg-type]
    return " ".join(capsys.readouterr().out.split())


def test_hidden_row_count_counts_the_highlighted_rows_as_shown(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    result = app.allocate(app.load("demo"))
    n = len(result.allocation.participants)
    out = _printed(capsys, monkeypatch, result, highlight=("PRK", "MNG", "LAO", "VNM", "KHM", "MMR"), limit=15)
    hidden = int(re.search(r"(\d+) more participants not shown", out).group(1))  # type: ignore[union-attr]
    rows = {code for code in result.allocation.participants if f"│ {code} " in out}
    assert hidden == n - len(rows), (hidden, n, len(rows))
    assert len(rows) > 15  # the highlighted participants outside the largest 15 are shown too


def test_table_and_file_carry_the_population_source(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    result = app.allocate(app.load_text(SCENARIO))
    out = _printed(capsys, monkeypatch, result)
    assert "population: UN WPP 2024 (starsim-data) (KEN, UGA, TZA); UN WPP 2019, 2020 estimate (TUV)" in out
    frame = result.frame()
    by = dict(zip(frame["participant"], frame["population_source"], strict=False))
    assert by["TUV"] == "UN WPP 2019, 2020 estimate" and by["KEN"] == "UN WPP 2024 (starsim-data)"



def test_allocate_says_which_covax_rules_a_policy_did_not_apply(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO + "policy: {name: covax-pro-rata, small_state_floor: {max_population: 1000000, "
                               "min_doses_per_100: 14}}\n")
    outputs = {}
    for policy in ("covax-pro-rata", "pro-rata-65+"):
        with pytest.raises(SystemExit) as info:
            main(["allocate", str(path), "--policy", policy])
            raise SystemExit(0)
        assert info.value.code == 0
        outputs[policy] = " ".join(capsys.readouterr().out.split())
    assert "does not apply" not in outputs["covax-pro-rata"]
    assert "pro-rata-65+ does not apply small_state_floor" in outputs["pro-rata-65+"]


def test_a_comparison_prints_in_a_few_lines() -> None:
    result = app.compare(app.load_text(SCENARIO), policies=["covax-pro-rata", "pro-rata-65+"])
    text = repr(result)
    assert len(text) < 400 and "covax-pro-rata" in text and "pro-rata-65+" in text
    assert f"{result.frame.loc['covax-pro-rata', 'deaths_averted']:,.0f}" in text
