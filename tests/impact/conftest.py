"""A small real world for the impact tests: six countries from WPP 2024 and Prem 2021/2017."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from dosewise.impact import ImpactParams, Setup, Vaccines, prepare, product_vaccines
from dosewise.scenario import Scenario
from dosewise.world import World, build_world

CODES = ["NGA", "IND", "ITA", "JPN", "HTI", "BOL"]


@pytest.fixture(scope="session")
def small_world() -> World:
    sc = Scenario.model_validate(
        {
            "participants": {"include": CODES, "defaults": {"capacity_per_week": 500_000}},
            "lots": [
                {"id": "AZ", "product": "AZD1222", "doses": 30_000_000, "available": dt.date(2021, 2, 1),
                 "expiry": dt.date(2021, 8, 1)},
                {"id": "PF", "product": "BNT162b2", "doses": 6_000_000, "available": dt.date(2021, 2, 15),
                 "expiry": dt.date(2021, 4, 1)},
            ],
        }
    )
    return build_world(sc)


@pytest.fixture(scope="session")
def small_setup(small_world: World) -> Setup:
    return prepare(small_world, ImpactParams(days=160))


def campaign(world: World, setup: Setup, *, share: float = 0.004, first: int = 5, last: int = 40) -> Vaccines:
    """Two products, doses every day from ``first`` to ``last`` at ``share`` of the population a day."""
    doses = np.zeros((setup.n, 2, setup.days))
    doses[:, 0, first:last] = share * world.population[:, None]
    doses[:, 1, first + 10 : last] = 0.5 * share * world.population[:, None]
    return product_vaccines(world, ["AZD1222", "BNT162b2"], doses, setup.params)
