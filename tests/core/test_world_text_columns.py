"""The world's text columns for many units are built from codes (:func:`dosewise.world._text_columns`): the
participants frame is the one pandas builds from the object columns, value for value, dtype for dtype,
index included, whatever mix of countries, units, overrides and missing values the scenario has."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from dosewise import world as world_module
from dosewise.scenario import parse_scenario
from dosewise.world import build_world

N = 12_000  # above the size where codes are used


def _units(n: int, **extra: Any) -> list[dict[str, Any]]:
    parents = ["KEN", "UGA", None, "NPL", "ken"]
    units = []
    for i in range(n):
        unit: dict[str, Any] = {"id": f"U{i:06d}", "population": 1_000.0 + 13 * i}
        parent = parents[i % len(parents)]
        if parent is not None:
            unit["parent"] = parent
        else:
            unit["age_structure_like"] = "ETH"
        for key, value in extra.items():
            unit[key] = value(i) if callable(value) else value
        units.append(unit)
    return units


def _scenario(participants: dict[str, Any]) -> Any:
    return parse_scenario({"name": "text columns", "participants": participants,
                           "lots": [{"id": "L0", "product": "AZD1222", "doses": 9_000_000, "available": "2021-03-01",
                                     "expiry": "2021-12-31"}]})


def _both(sc: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    coded = build_world(sc).participants
    with monkeypatch.context() as m:
        m.setattr(world_module, "_CODED_MIN_ROWS", 10**12)
        plain = build_world(sc).participants
    return coded, plain


@pytest.mark.parametrize("participants", [
    {"units": _units(N)},
    {"include": ["KEN", "UGA", "IND", "BRA", "PRK"], "units": _units(N)},
    {"include": ["KEN", "PRK"], "units": _units(N, name=lambda i: None if i % 3 else f"Unit {i}",
                                                  population_source="census 2019")},
    {"units": _units(N, age_structure_like=lambda i: ["ETH", None, "NGA"][i % 3])},
    {"units": _units(N), "overrides": {"U000004": {"age_structure_like": "NGA", "population": 5_000}}},
    {"units": _units(N), "defaults": {"age_structure_like": "UGA"}},
    # no text at all in parent, income level and region: object columns of None, as pandas builds them
    {"units": [{"id": f"U{i:06d}", "population": 1_000.0 + i, "age_structure_like": "KEN"} for i in range(N)]},
    {"units": [{"id": f"U{i:06d}", "population": 1_000.0 + i} for i in range(N)],
     "defaults": {"age_structure_like": "UGA"}},
    # a parent without an income level or region in the reference data
    {"units": [{"id": f"U{i:06d}", "population": 800.0, "parent": "VAT", "age_structure_like": "ITA"}
               for i in range(N)]},
])
def test_coded_text_columns_are_the_frame_pandas_builds(participants: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    coded, plain = _both(_scenario(participants), monkeypatch)
    pd.testing.assert_frame_equal(coded, plain, check_exact=True)
    assert list(coded.dtypes) == list(plain.dtypes) and coded.index.dtype == plain.index.dtype
    assert coded.index.name == "code" and coded.index.is_unique


def test_the_text_comes_from_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: at this size the columns really are built from codes (the Arrow dictionary path)."""
    if world_module._arrow_str() is None:
        pytest.skip("pandas without an Arrow string default")
    calls: list[int] = []
    real = world_module._text_columns

    def counting(*args: Any) -> Any:
        out = real(*args)
        calls.append(len(out))
        return out

    monkeypatch.setattr(world_module, "_text_columns", counting)
    frame = build_world(_scenario({"units": _units(N)})).participants
    assert calls == [6]  # index, name, parent, age_structure_like, income_level, region
    assert frame.loc["U000000", "parent"] == "KEN" and frame.loc["U000004", "parent"] == "KEN"
    assert frame["parent"].isna()["U000002"] and frame.loc["U000002", "age_structure_like"] == "ETH"
    assert frame.loc["U000000", "income_level"] == "Lower middle" and frame.loc["U000001", "region"] == "Africa"
