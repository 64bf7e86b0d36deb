"""Defects a new user met in everyday use, each with its test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dosewise import app
from dosewise.errors import DataSourceError


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "dosewise.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**os.environ, **(env or {})})


def test_need_out_parquet_writes_parquet(shared_data: Path, tmp_path: Path) -> None:
    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    proc = run("need", "--group", "AMC92", "--as-of", "2021-08-29", "--who", str(who), "--out", "n.parquet",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_parquet(tmp_path / "n.parquet")
    assert len(frame) == 92 and {"participant", "need", "rank", "flags"} <= set(frame.columns)


def test_allocation_file_keeps_participants_that_get_nothing(tmp_path: Path) -> None:
    sc = """name: t
participants:
  include: [KEN, UGA, TUV]
  overrides: {TUV: {population: 11792, age_structure_like: KIR, cold_chain: [2-8C]}}
lots:
  - {id: P, product: BNT162b2, doses: 1170000, available: 2021-03-01, expiry: 2021-09-01}
policy: {name: covax-pro-rata, buffer: 0}
"""
    (tmp_path / "s.yaml").write_text(sc)
    proc = run("allocate", "s.yaml", "--out", "a.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(tmp_path / "a.csv")
    assert set(frame["participant"]) == {"KEN", "UGA", "TUV"}
    assert int(frame.loc[frame["participant"] == "TUV", "doses"].iloc[0]) == 0  # cold chain cannot hold it
    assert frame["population"].dtype.kind == "i"  # people are whole


def test_need_outside_the_file_is_refused(shared_data: Path) -> None:
    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    import datetime as dt

    with pytest.raises(DataSourceError, match="outside the weekly file"):
        app.need(app.participants_for_group("AMC92"), who, dt.date(2030, 1, 1))


def test_rows_without_surveillance_show_no_threat_value(shared_data: Path) -> None:
    import datetime as dt

    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    scores = app.need(app.participants_for_group("AMC92"), who, dt.date(2021, 8, 29))
    flagged = scores[scores["flags"].str.contains("no_threat_data|not_in_feed")]
    assert len(flagged) > 0
    assert flagged["threat"].isna().all()


def test_demo_with_a_missing_who_file_leaves_no_ledger(tmp_path: Path) -> None:
    proc = run("demo", "--db", "d.db", "--who", "missing.csv", cwd=tmp_path)
    assert proc.returncode == 2 and "missing.csv" in proc.stderr
    assert not (tmp_path / "d.db").exists()


def test_second_demo_on_the_same_ledger_records_nothing_new_and_says_what_it_did(shared_data: Path,
                                                                                  tmp_path: Path) -> None:
    who = str(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv")
    first = run("demo", "--db", "d.db", "--who", who, "--no-impact", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    with app.Desk.open(str(tmp_path / "d.db")) as desk:
        head = desk.store.head()
    second = run("demo", "--db", "d.db", "--who", who, "--no-impact", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    with app.Desk.open(str(tmp_path / "d.db")) as desk:
        assert desk.store.head() == head
    assert "re-offered by need score" in second.stdout and "pro rata" not in second.stdout.split("pass 1")[1][:200]


def test_data_pull_from_a_local_copy_feeds_need(shared_data: Path, tmp_path: Path) -> None:
    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = run("data", "pull", "who", "--from", str(who), cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr
    proc = run("need", "--group", "AMC92", "--as-of", "2021-08-29", "--top", "3", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "LKA" in proc.stdout


def test_round_advance_uses_the_cached_who_file_when_the_round_ranks_by_need(shared_data: Path,
                                                                              tmp_path: Path) -> None:
    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert run("data", "pull", "who", "--from", str(who), cwd=tmp_path, env=env).returncode == 0
    (tmp_path / "s.yaml").write_text("""name: t
participants: {include: [KEN, UGA, LKA, TUN, NPL]}
lots: [{id: CV, product: CoronaVac, doses: 1000000, available: 2021-08-30, expiry: 2022-02-28}]
policy: {name: covax-pro-rata, buffer: 0}
round: {id: R, opens: 2021-08-30, reallocation: need}
""")
    assert run("round", "open", "s.yaml", "--db", "l.db", cwd=tmp_path, env=env).returncode == 0
    assert run("round", "respond", "R:CV:KEN:0", "--decline", "other", "--db", "l.db", cwd=tmp_path,
               env=env).returncode == 0
    proc = run("round", "advance", "R", "--to", "2021-09-07", "--db", "l.db", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "order: need" in proc.stdout


def test_relative_paths_in_a_scenario_resolve_against_its_folder(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "who.csv").symlink_to(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv")
    (folder / "s.yaml").write_text("""name: t
participants: {include: [KEN, UGA, LKA]}
lots: [{id: CV, product: CoronaVac, doses: 1000000, available: 2021-08-30, expiry: 2022-02-28}]
policy: {name: covax-need-weighted, buffer: 0, who: who.csv, as_of: 2021-08-29}
""")
    proc = run("allocate", "scenarios/s.yaml", "--out", "a.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "a.json").read_text())
    assert {r["participant"] for r in rows} == {"KEN", "UGA", "LKA"}


def test_need_table_names_its_sources_units_and_a_file_that_gave_nothing(shared_data: Path, tmp_path: Path) -> None:
    who = shared_data / "surveillance" / "WHO-COVID-19-global-data.csv"
    vaccination = shared_data / "vaccination" / "who" / "vaccination-data.csv"  # dated 2023: nothing by 2021
    proc = run("need", "--group", "AMC92", "--as-of", "2021-08-29", "--who", str(who), "--vaccination",
               str(vaccination), "--top", "3", cwd=tmp_path, env={"COLUMNS": "400"})
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert f"from {who}" in out
    assert "gap to 70% (pp)" in out and "coverage score" in out
    assert f"{vaccination} contributed nothing" in out
    proc = run("need", "--group", "AMC92", "--as-of", "2030-01-01", "--who", str(who), cwd=tmp_path)
    assert proc.returncode == 2 and str(who) in proc.stderr and "outside the weekly file" in proc.stderr
