from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dosewise.errors import ReferenceDataError, ScenarioError
from dosewise.scenario import load_scenario, parse_scenario
from dosewise.world import build_world


def base() -> dict[str, Any]:
    return {
        "participants": {"include": ["KEN", "UGA", "PRK"]},
        "lots": [{"id": "L1", "product": "AZD1222", "doses": 1_000_000, "available": "2021-03-01",
                  "expiry": "2021-09-01"}],
    }


def write(tmp_path: Path, data: Any) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("mutate", "field", "value"),
    [
        (lambda d: d.pop("lots"), "lots", None),
        (lambda d: d["participants"]["include"].append("XYZ"), "participants.include[3]", "XYZ"),
        (lambda d: d["lots"][0].update(doses=-5), "lots[0].doses", -5),
        (lambda d: d["lots"][0].update(expiry="2021-01-01"), "lots[0]", None),
        (lambda d: d["lots"][0].update(product="Vaxxo"), "lots[0].product", "Vaxxo"),
        (lambda d: d["participants"]["include"].append("KEN"), "participants", "KEN"),
        (lambda d: d["lots"][0].pop("available"), "lots[0].available", None),
    ],
    ids=["missing-lots", "unknown-iso3", "negative-doses", "expiry-before-available", "unknown-product",
         "duplicate-participant", "missing-field"],
)
def test_bad_scenarios_name_field_and_value(tmp_path: Path, mutate: Any, field: str, value: Any) -> None:
    data = base()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert str(path) in str(err)
    fields = [f for f, _, _ in err.problems]
    assert field in fields, fields
    if value is not None:
        assert any(v == value for f, _, v in err.problems if f == field)


def test_cli_reports_bad_scenario_without_traceback(tmp_path: Path) -> None:
    data = base()
    data["lots"][0]["doses"] = -5
    path = write(tmp_path, data)
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "allocate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "lots[0].doses" in proc.stderr and "-5" in proc.stderr and str(path) in proc.stderr


def test_missing_population_is_an_error_not_a_zero() -> None:
    data = base()
    data["participants"]["include"].append("TUV")
    with pytest.raises(ReferenceDataError, match=r"TUV.*Tuvalu"):
        build_world(parse_scenario(data))
    data["participants"]["overrides"] = {"TUV": {"population": 11792, "age_structure_like": "KIR"}}
    world = build_world(parse_scenario(data))
    assert world.participants.loc["TUV", "population"] == 11792
    assert abs(world.pop_by_age[list(world.codes).index("TUV")].sum() - 11792) < 1e-6


def test_age_structure_like_lends_the_shape_never_the_head_count() -> None:
    data = base()
    data["participants"]["include"].append("TUV")
    data["participants"]["overrides"] = {"TUV": {"age_structure_like": "KIR"}}
    # no population for Tuvalu from WPP or the scenario: Kiribati's head count must not stand in
    with pytest.raises(ReferenceDataError, match=r"participants\.overrides\.TUV.*age shape only"):
        build_world(parse_scenario(data))
    data["participants"]["overrides"] = {"TUV": {"population": 11792, "age_structure_like": "KIR"}}
    data["participants"]["include"].append("KIR")
    world = build_world(parse_scenario(data))
    tuv, kir = list(world.codes).index("TUV"), list(world.codes).index("KIR")
    assert world.participants.loc["TUV", "population"] == 11792
    assert world.participants.loc["KIR", "population"] != 11792
    shape_tuv = world.pop_by_age[tuv] / world.pop_by_age[tuv].sum()
    shape_kir = world.pop_by_age[kir] / world.pop_by_age[kir].sum()
    assert abs(shape_tuv - shape_kir).max() < 1e-12


def test_overrides_drive_acceptance_and_cold_chain() -> None:
    data = base()
    data["lots"].append({"id": "L2", "product": "BNT162b2", "doses": 11700, "available": "2021-03-01",
                         "expiry": "2021-06-01"})
    data["participants"]["overrides"] = {
        "PRK": {"declines": ["CoronaVac", "AZ"], "interested_in": ["Sputnik V"]},
        "UGA": {"cold_chain": ["2-8C"]},
        "KEN": {"approved": ["AZD1222", "BNT162b2"], "indemnified": ["AZD1222"]},
    }
    world = build_world(parse_scenario(data))
    ken = list(world.codes).index("KEN")
    assert world.usable()[ken].tolist() == [True, False]  # approved for both, indemnity only for AZ
    usable = world.usable()
    assert not usable[2, 0] and usable[1, 0]
    assert not usable[1, 1] and usable[2, 1]
    assert world.interested[2, world.product_index("Gam-COVID-Vac")]


def test_sub_national_units(tmp_path: Path) -> None:
    data = {
        "participants": {"units": [
            {"id": "KE-30", "name": "Mombasa", "population": 1_208_333, "parent": "KEN"},
            {"id": "KE-47", "name": "Nairobi", "population": 4_397_073, "parent": "KEN"},
        ]},
        "lots": base()["lots"],
    }
    world = build_world(parse_scenario(data))
    assert list(world.codes) == ["KE-30", "KE-47"]
    assert world.participants.loc["KE-47", "income_level"] == "Lower middle"
    assert world.pop_by_age[1].sum() == pytest.approx(4_397_073)


def test_a_date_that_does_not_exist_is_reported_with_its_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("as_of: 2021-02-30\nparticipants: {include: [KEN]}\n"
                    "lots: [{id: L1, product: AZD1222, doses: 1000, available: 2021-03-01, expiry: 2021-13-01}]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = {f: v for f, _, v in info.value.problems}
    assert problems.get("as_of") == "2021-02-30"
    assert problems.get("lots[0].expiry") == "2021-13-01"
    assert str(path) in str(info.value)
