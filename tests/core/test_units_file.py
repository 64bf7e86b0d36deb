"""Units from a CSV/Parquet file named by the scenario: same world as inline units, clear errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from dosewise.errors import InputError, ReferenceDataError, ScenarioError
from dosewise.policies import allocate_pro_rata
from dosewise.scenario import load_scenario, parse_scenario
from dosewise.units import file_sha256
from dosewise.world import build_world

LOTS = [{"id": "AZ-1", "product": "AZD1222", "doses": 60_000_000, "available": "2021-03-01", "expiry": "2021-09-01"},
        {"id": "PF-1", "product": "BNT162b2", "doses": 11_700_000, "available": "2021-04-01", "expiry": "2021-07-01"}]


def wpp_units(shared_data: Path) -> list[dict[str, Any]]:
    """One unit per country of the shared UN WPP 2024 extract (2020, both sexes), parent = the country."""
    out: list[dict[str, Any]] = []
    with open(shared_data / "population" / "wpp2024_population_by_age_sex.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["year"] == "2020" and r["sex"] == "Both" and r["iso3"]:
                total = sum(float(v) for k, v in r.items() if k[0].isdigit())
                out.append({"id": f"{r['iso3']}-ALL", "population": total, "parent": r["iso3"]})
    return out


def scenario(participants: dict[str, Any]) -> dict[str, Any]:
    return {"name": "units", "participants": participants, "lots": LOTS, "policy": {"buffer": 0.05}}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_csv_and_parquet_units_equal_inline_units(shared_data: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    units = wpp_units(shared_data)
    assert len(units) > 150
    units[3]["coverage_cap"] = 0.1
    units[4]["declines"] = ["AZD1222"]
    units[5]["cold_chain"] = ["2-8C"]
    inline = build_world(parse_scenario(scenario({"units": units})))
    folder = tmp_path / "scenarios"
    folder.mkdir()
    frame = pd.DataFrame(units)
    frame["declines"] = frame["declines"].map(lambda v: ";".join(v) if isinstance(v, list) else None)
    frame["cold_chain"] = frame["cold_chain"].map(lambda v: ";".join(v) if isinstance(v, list) else None)
    frame.to_csv(folder / "units.csv", index=False)
    frame.to_parquet(folder / "units.parquet", index=False)
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the scenario's folder, not here
    for name in ("units.csv", "units.parquet"):
        path = write_yaml(folder / f"s-{name}.yaml", scenario({"units_file": name}))
        sc = load_scenario(path)
        assert sc.participants.units.source == str(folder / name)
        world = build_world(sc)
        pd.testing.assert_frame_equal(world.participants, inline.participants)
        np.testing.assert_array_equal(world.pop_by_age, inline.pop_by_age)
        for attr in ("accepts", "interested", "storage_ok"):
            np.testing.assert_array_equal(getattr(world, attr), getattr(inline, attr))
        np.testing.assert_array_equal(allocate_pro_rata(world, sc.policy).doses,
                                      allocate_pro_rata(inline, sc.policy).doses)
    # each unit takes its parent's WPP 2024 age structure, scaled to its own population
    ind = list(inline.codes).index("IND-ALL")
    assert inline.pop_by_age[ind].sum() == pytest.approx(units[ind]["population"])
    assert inline.participants.loc["IND-ALL", "income_level"] == "Lower middle"
    assert not inline.accepts[4, inline.product_index("AZD1222")]
    assert not inline.storage_ok[5, inline.product_index("BNT162b2")]


def units_csv(tmp_path: Path, text: str, **participants: Any) -> Path:
    (tmp_path / "units.csv").write_text(text, encoding="utf-8")
    return write_yaml(tmp_path / "s.yaml", scenario({"units_file": "units.csv", **participants}))


@pytest.mark.parametrize(
    ("text", "row", "column", "value"),
    [
        ("id,population,parent\nA,10,KEN\nB,-5,KEN\n", 3, "population", -5.0),
        ("id,population,parent\nA,10,KEN\nB,lots,KEN\n", 3, "population", "lots"),
        ("id,population,parent\nA,10,KEN\n,7,KEN\n", 3, "id", None),
        ("id,population,parent\nA,10,KEN\nB,,KEN\n", 3, "population", None),
        ("id,population,coverage_cap\nA,10,1.5\n", 2, "coverage_cap", 1.5),
        ("id,population,lead_time_days\nA,10,2.5\n", 2, "lead_time_days", 2.5),
        ("id,population,cold_chain\nA,10,freezer\n", 2, "cold_chain", "freezer"),
        ("id,parent\nA,KEN\n", None, "population", None),
        ("id,population,colour\nA,10,red\n", 1, "colour", "colour"),
        ("id,population\nA,10\nx:y/../z,10\n", 3, "id", "x:y/../z"),
        ("id,population\nA,20000000000\n", 2, "population", 2e10),
        ("id,population,lead_time_days\nA,10,4000\n", 2, "lead_time_days", 4000.0),
    ],
    ids=["negative", "not-a-number", "empty-id", "missing-population", "cap-above-1", "fractional-days",
         "unknown-storage", "no-population-column", "unknown-column", "id-characters", "population-too-large",
         "days-too-many"],
)
def test_bad_units_file_names_file_row_column_and_value(tmp_path: Path, text: str, row: int | None, column: str,
                                                        value: Any) -> None:
    path = units_csv(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_scenario(path)
    err = info.value
    assert err.file == str(tmp_path / "units.csv")
    assert err.field == column
    assert err.row == row
    assert err.value == value
    assert str(tmp_path / "units.csv") in str(err)


def test_many_bad_rows_are_counted_not_all_listed(tmp_path: Path) -> None:
    rows = "".join(f"U{i},-1,KEN\n" for i in range(50))
    path = units_csv(tmp_path, "id,population,parent\n" + rows)
    with pytest.raises(InputError, match=r"row 2.*45 more rows like this") as info:
        load_scenario(path)
    assert len(str(info.value)) < 2000


def test_reference_problems_in_a_units_file_name_the_file_and_unit(tmp_path: Path) -> None:
    path = units_csv(tmp_path, "id,population,parent\nA,10,KEN\nB,10,XYZ\nA,3,KEN\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = {(f, v) for f, _, v in info.value.problems}
    assert any("units.csv" in f and "id B" in f and "parent" in f and v == "XYZ" for f, v in problems), problems
    assert ("participants", "A") in problems  # duplicate unit id


def test_units_file_pinned_by_sha256(tmp_path: Path) -> None:
    path = units_csv(tmp_path, "id,population,parent\nA,10,KEN\n")
    digest = file_sha256(tmp_path / "units.csv")
    write_yaml(path, scenario({"units_file": "units.csv", "units_sha256": digest}))
    assert load_scenario(path).participants.units.sha256 == digest
    (tmp_path / "units.csv").write_text("id,population,parent\nA,11,KEN\n", encoding="utf-8")
    with pytest.raises(InputError, match="has changed") as info:
        load_scenario(path)
    assert info.value.field == "units_sha256"


def test_missing_or_wrong_kind_of_units_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", scenario({"units_file": "nowhere.csv"}))
    with pytest.raises(InputError, match="units file not found") as info:
        load_scenario(path)
    assert info.value.file == str(tmp_path / "nowhere.csv")
    (tmp_path / "units.xlsx").write_bytes(b"PK")
    write_yaml(path, scenario({"units_file": "units.xlsx"}))
    with pytest.raises(InputError, match=r"\.csv or \.parquet"):
        load_scenario(path)


def test_parquet_number_where_text_belongs(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1, 2], "population": [10.0, 20.0]}).to_parquet(tmp_path / "u.parquet")
    path = write_yaml(tmp_path / "s.yaml", scenario({"units_file": "u.parquet"}))
    with pytest.raises(InputError, match="must hold text") as info:
        load_scenario(path)
    assert info.value.field == "id"


def test_cli_bad_units_file_exit_2_without_traceback(tmp_path: Path) -> None:
    path = units_csv(tmp_path, "id,population,parent\nA,10,KEN\nB,-5,KEN\n")
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "allocate", str(path)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path.parent, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    for part in ("units.csv", "row 3", "population", "-5"):
        assert part in proc.stderr, proc.stderr


def test_inline_unit_errors_keep_their_field_paths() -> None:
    units: list[Any] = [{"id": "A", "population": 10, "parent": "KEN"},
                        {"id": "B", "population": "many", "parent": "KEN"},
                        {"id": "C", "population": 5, "colour": "red"},
                        {"id": "", "population": 5},
                        {"id": "E", "population": 5, "parent": "XYZ"}]
    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario({"units": units}))
    fields = {f: v for f, _, v in info.value.problems}
    assert fields["participants.units[1].population"] == "many"
    assert fields["participants.units[2].colour"] == "red"
    assert "participants.units[3].id" in fields
    del units[1:4]
    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario({"units": units}))
    assert ("participants.units[1].parent", "XYZ") in {(f, v) for f, _, v in info.value.problems}


def test_overrides_apply_to_units_and_policy_caps_win() -> None:
    units = [{"id": "KE-30", "population": 1_208_333, "parent": "KEN"},
             {"id": "KE-47", "population": 4_397_073, "parent": "KEN"}]
    data = scenario({"units": units, "overrides": {"KE-47": {"coverage_cap": 0.05, "declines": ["BNT162b2"],
                                                             "age_structure_like": "UGA"},
                                                   "KE-30": {"coverage_cap": 0.5}}})
    data["policy"]["caps"] = {"KE-30": 0.1}
    world = build_world(parse_scenario(data))
    assert world.participants.loc["KE-47", "coverage_cap"] == 0.05
    assert world.participants.loc["KE-30", "coverage_cap"] == 0.1
    assert not world.accepts[1, world.product_index("BNT162b2")] and world.accepts[0, world.product_index("BNT162b2")]
    assert world.participants.loc["KE-47", "age_structure_like"] == "UGA"
    assert world.pop_by_age[1].sum() == pytest.approx(4_397_073)
    assert units[1]["population"] == 4_397_073  # the scenario's own data untouched


def test_unit_parent_without_wpp_population_is_an_error() -> None:
    data = scenario({"units": [{"id": "T1", "population": 5000, "parent": "TUV"}]})
    with pytest.raises(ReferenceDataError, match=r"T1.*TUV"):
        build_world(parse_scenario(data))
    data["participants"]["units"][0]["age_structure_like"] = "KIR"
    world = build_world(parse_scenario(data))
    assert world.pop_by_age[0].sum() == pytest.approx(5000)


def test_a_round_records_the_units_of_its_file(shared_data: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger keeps the units themselves: the round's world is rebuilt after the file is gone."""
    from dosewise.ledger import open_store
    from dosewise.rounds import Rounds

    units = wpp_units(shared_data)[:40]
    pd.DataFrame(units).to_csv(tmp_path / "units.csv", index=False)
    path = write_yaml(tmp_path / "s.yaml", scenario({"units_file": "units.csv"}))
    store = open_store(str(tmp_path / "ledger.db"))
    rid = Rounds(store).open(path.read_text(encoding="utf-8"), file=str(path), round_id="U1")
    opened_world = build_world(load_scenario(path))
    (tmp_path / "units.csv").unlink()
    monkeypatch.chdir(shared_data)
    again = Rounds(open_store(str(tmp_path / "ledger.db")))
    sc, world = again.scenario_world(rid)
    assert sc.participants.units_source is not None and "sha256:" in sc.participants.units_source
    pd.testing.assert_frame_equal(world.participants, opened_world.participants)
    np.testing.assert_array_equal(world.pop_by_age, opened_world.pop_by_age)
