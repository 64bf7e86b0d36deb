"""``dosewise need`` and ``dosewise data pull`` through the real entry point."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
import pytest
from tests.cli_run import run_cli

from dosewise.reference.groups import group_members


def test_need_group_amc92(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    out_csv = tmp_path / "need.csv"
    code, out, err = run_cli(
        [
            "need",
            "--group",
            "AMC92",
            "--as-of",
            "2021-09-15",
            "--who",
            str(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"),
            "--vaccination",
            str(shared_data / "vaccination" / "who" / "vaccination-data.csv"),
            "--sitrep",
            "demo",
            "--top",
            "10",
            "--out",
            str(out_csv),
        ],
        capsys,
    )
    assert code == 0, err
    assert "WHO week 2021-09-12" in out
    frame = pd.read_csv(out_csv, index_col=0, keep_default_na=False, na_values={"need": [""]})
    assert sorted(frame.index) == group_members("AMC92")
    assert frame["rank"].tolist() == sorted(frame["rank"])
    assert "zero_cases_with_testing" in frame.loc["PRK", "flags"]
    assert "population_missing" in frame.loc["SOM", "flags"]  # WPP 2024 as shipped lacks Somalia
    assert out.count("\n│") >= 10  # table rows (--top 10)
    # the WHO vaccination snapshot is dated Dec 2023: no look-ahead into Sept 2021
    assert (frame["coverage_gap"].astype(str).isin(["", "nan"])).all()


def test_need_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(["need", "--as-of", "2021-09-15"], capsys)
    assert code == 2 and "SCENARIO" in err
    bad = tmp_path / "who.csv"
    bad.write_text("Date_reported,Country_code\n2021-01-03,NA\n", encoding="utf-8")
    code, _, err = run_cli(["need", "--group", "AMC92", "--as-of", "2021-09-15", "--who", str(bad)], capsys)
    assert code == 2 and "who.csv" in err and "Country" in err


def test_pull_offline_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/WHO-COVID-19-global-data.csv"
    code, _, err = run_cli(["data", "pull", "who", "--cache-dir", str(tmp_path), "--url", dead], capsys)
    assert code == 2 and "no cached copy" in err
    (tmp_path / "WHO-COVID-19-global-data.csv").write_text("cached\n", encoding="utf-8")
    code, out, _ = run_cli(["data", "pull", "who", "--cache-dir", str(tmp_path), "--url", dead], capsys)
    assert code == 0 and "offline: kept cached copy from" in out
    assert (tmp_path / "WHO-COVID-19-global-data.csv").read_text(encoding="utf-8") == "cached\n"


def test_need_on_the_demo_scenario(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.scenario import demo_scenario_path

    out_csv = tmp_path / "need.csv"
    who = str(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv")
    argv = ["need", str(demo_scenario_path()), "--as-of", "2021-09-15", "--who", who, "--top", "3"]
    code, _, err = run_cli([*argv, "--out", str(out_csv)], capsys)
    assert code == 0, err
    frame = pd.read_csv(out_csv, index_col=0)
    assert len(frame) == 92 and frame["need"].between(0, 1).all()
