"""The scenario's epidemic section and the command-line flags that override it: strict checks,
clean errors (file, field, value; exit code 2, no traceback)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dosewise.epidemic import EpidemicSettings, with_overrides
from dosewise.errors import InputError, ScenarioError
from dosewise.scenario import parse_scenario_text

BASE = """
name: t
participants: {include: [KEN, UGA]}
lots:
  - {id: a, product: AZD1222, doses: 1000000, available: 2021-03-01, expiry: 2021-12-01}
"""


@pytest.mark.parametrize(
    ("snippet", "field", "value"),
    [
        ("r0: -1", "epidemic.r0", "-1"),
        ("r0: .nan", "epidemic.r0", None),
        ("r0: .inf", "epidemic.r0", None),
        ("days: 0", "epidemic.days", "0"),
        ("days: 5000", "epidemic.days", "5000"),
        ("prior_immunity: 1.2", "epidemic.prior_immunity", "1.2"),
        ("max_uptake: -0.1", "epidemic.max_uptake", None),
        ("seed_fraction: 0", "epidemic.seed_fraction", "0"),
        ("rt: [{from: 2021-04-01, value: -2}]", "epidemic.rt[0].value", "-2"),
        ("prior_immunity_by_age: [0.1, 0.2]", "epidemic.prior_immunity_by_age", None),
        ("health_system: magic", "epidemic.health_system", "magic"),
        ("natural_immunity_days: -5", "epidemic.natural_immunity_days", "-5"),
    ],
)
def test_bad_epidemic_values_name_file_field_and_value(snippet: str, field: str, value: str | None) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario_text(BASE + "epidemic:\n  " + snippet + "\n", file="world.yaml")
    text = str(exc.value)
    assert "world.yaml" in text and field in text
    if value is not None:
        assert value in text


def test_rt_schedule_in_days_from_start() -> None:
    sc = parse_scenario_text(BASE + """epidemic:
  start: 2021-03-01
  rt: [{from: 2021-03-11, value: 1.2}, {from: 5, value: 0.9}]
  prior_immunity: 0.3
""")
    assert sc.epidemic is not None
    from dosewise.impact.settings import params_from_epidemic

    params = params_from_epidemic(sc.epidemic)
    assert params.rt == {10: 1.2, 5: 0.9, 0: 2.5}
    assert params.prior_immunity == 0.3
    assert params.health_system == "levin2022"


def test_rt_step_before_start_is_refused() -> None:
    with pytest.raises(ScenarioError, match="before the simulation start"):
        parse_scenario_text(BASE + "epidemic:\n  start: 2021-03-01\n  rt: [{from: 2021-02-01, value: 1.1}]\n")


def test_overrides_name_the_flag() -> None:
    with pytest.raises(InputError) as exc:
        with_overrides(EpidemicSettings(), {"r0": float("nan")})
    assert exc.value.field == "--r0"
    with pytest.raises(InputError) as exc:
        with_overrides(None, {"days": 5000})
    assert exc.value.field == "--days" and exc.value.value == 5000
    ok = with_overrides(EpidemicSettings(start=dt.date(2021, 1, 1)), {"r0": 1.5, "days": None})
    assert ok.r0 == 1.5 and ok.days == 365 and ok.start == dt.date(2021, 1, 1)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--r0", "-1"], "--r0"),
        (["--r0", "nan"], "--r0"),
        (["--r0", "inf"], "--r0"),
        (["--days", "0"], "--days"),
        (["--days", "5000"], "--days"),
        (["--prior-immunity", "1"], "--prior-immunity"),
        (["--health-system", "x"], "--health-system"),
    ],
)
def test_cli_compare_bad_epidemic_flags_exit_2(args: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["compare", "--demo", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


def test_cli_allocate_bad_flag_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dosewise.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    with pytest.raises(SystemExit) as exc:
        main(["allocate", str(path), "--r0", "nan"])
    assert exc.value.code == 2
    assert "--r0" in capsys.readouterr().err


def test_world_scenario_ships_and_parses() -> None:
    from importlib import resources

    text = (resources.files("dosewise") / "data" / "world_rt.yaml").read_text(encoding="utf-8")
    sc = parse_scenario_text(text, file="world_rt.yaml")
    assert sc.participants.group == "ALL"
    assert sc.epidemic is not None and sc.epidemic.rt and sc.epidemic.prior_immunity > 0
