"""Named groups (ALL, income groups, WHO regions, SFP) and the targeted policies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dosewise.errors import InputError
from dosewise.reference.groups import group_members, who_regions
from dosewise.reference.population import population_by_age
from dosewise.registry import get_policy
from dosewise.scenario import Scenario
from dosewise.world import build_world


def test_income_groups_partition_all() -> None:
    everyone = set(group_members("ALL"))
    parts = [set(group_members(g)) for g in ("HIC", "UMIC", "LMIC", "LIC")]
    assert sum(len(p) for p in parts) == len(everyone) == 187
    assert set().union(*parts) == everyone
    assert "NGA" in group_members("lmic") and "USA" in group_members("HIC") and "ETH" in group_members("LIC")
    assert set(group_members("SFP")) == everyone - set(group_members("AMC92"))


def test_who_regions_match_the_who_file(shared_data: Path) -> None:
    who = pd.read_csv(shared_data / "surveillance" / "WHO-COVID-19-global-data.csv", keep_default_na=False,
                      usecols=["Country_code", "WHO_region"]).drop_duplicates()
    master = pd.read_csv(shared_data / "metadata" / "countries_master.csv", keep_default_na=False)
    iso2_to_3 = dict(zip(master["iso2"], master["iso3"], strict=True))
    regions = who_regions()
    checked = 0
    for iso2, region in zip(who["Country_code"], who["WHO_region"], strict=True):
        iso3 = iso2_to_3.get(iso2)
        if iso3 in regions:
            assert regions[iso3] == region, iso3
            checked += 1
    assert checked > 180
    assert "KEN" in group_members("AFRO") and "IND" in group_members("SEARO")


def world_of(codes: list[str], doses: int, policy: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    sc = Scenario.model_validate(
        {
            "participants": {"include": codes},
            "lots": [{"id": "a", "product": "AZD1222", "doses": doses, "available": dt.date(2021, 3, 1),
                      "expiry": dt.date(2021, 12, 1)}],
            "policy": policy or {"name": "covax-pro-rata", "buffer": 0.0},
        }
    )
    return build_world(sc), sc.policy


def test_high_income_first_serves_high_income_before_anyone() -> None:
    world, params = world_of(["USA", "DEU", "NGA", "ETH", "BRA"], 10_000_000)
    alloc = get_policy("high-income-first")(world, params)
    got = pd.Series(alloc.totals(), index=alloc.participants)
    assert got[["NGA", "ETH", "BRA"]].sum() == 0
    assert got[["USA", "DEU"]].sum() == 10_000_000 - int(alloc.remainder.sum())
    # pro rata within the group: equal doses per 100 (to a shipping unit)
    per = got[["USA", "DEU"]] / world.participants.loc[["USA", "DEU"], "population"]
    assert per["USA"] == pytest.approx(per["DEU"], rel=1e-3)
    low = pd.Series(get_policy("low-income-first")(world, params).totals(), index=alloc.participants)
    assert low["ETH"] > 0 and low[["USA", "DEU", "BRA", "NGA"]].sum() == 0


def test_next_group_gets_what_the_first_cannot_take() -> None:
    world, params = world_of(["ISL", "MLT", "ETH"], 3_000_000)  # two small high-income countries
    got = pd.Series(get_policy("high-income-first")(world, params).totals(), index=world.codes)
    hic_people = world.participants.loc[["ISL", "MLT"], "population"].sum()
    assert got[["ISL", "MLT"]].sum() <= 2 * hic_people + 2 * 2400
    assert got["ETH"] > 0


def test_pro_rata_65_plus_is_proportional_to_people_aged_65_and_over() -> None:
    codes = ["JPN", "NGA", "ITA", "IND"]
    world, params = world_of(codes, 20_000_000)
    got = get_policy("pro-rata-65+")(world, params).totals().astype(float)
    old = population_by_age(codes, 2020)[:, 13:].sum(axis=1)
    np.testing.assert_allclose(got / got.sum(), old / old.sum(), atol=1e-3)


def test_priority_groups_errors_name_the_option() -> None:
    world, _ = world_of(["KEN"], 1_000_000)
    _, params = world_of(["KEN"], 1_000_000, {"name": "priority-groups", "options": {"order": ["NOPE"]}})
    with pytest.raises(InputError) as exc:
        get_policy("priority-groups")(world, params)
    assert exc.value.field == "policy.order[0]"
    _, params = world_of(["KEN"], 1_000_000, {"name": "priority-groups", "options": {"order": ["ALL"], "age": "66+"}})
    with pytest.raises(InputError, match="multiple of 5"):
        get_policy("priority-groups")(world, params)
