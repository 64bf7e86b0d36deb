"""Fixtures for the optimiser tests: a hand-checkable instance and the AMC92 demo world (real WPP data)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml

from dosewise.optimize import ProblemData, linear_discount
from dosewise.scenario import Scenario
from dosewise.world import World, build_world
from optimize.synthetic import synthetic_tier_values


def tiny_problem(**changes: object) -> ProblemData:
    """3 participants × 2 lots × 3 weeks × 2 tiers.

    A: takes both lots, no weekly capacity; B: only lot L1, 150 doses a week, lot L1 must reach
    it by week 1 (shelf life); C: only lot L2, 120 doses a week, lead time makes week 2 its first.
    """
    base: dict[str, object] = {
        "usable": np.array([[True, True], [True, False], [False, True]]),
        "first_week": np.array([[0, 1], [0, 1], [0, 2]]),
        "last_week": np.array([[2, 2], [1, 2], [2, 2]]),
        "value": np.array([[3.0, 1.0], [2.0, 1.5], [4.0, 0.5]]) * 1e-4,
        "product_factor": np.array([1.0, 0.8]),
        "discount": linear_discount(3, 0.3),
        "budget": np.array([1000, 500]),
        "course": np.array([2.0, 1.0]),
        "unit": np.array([100, 10]),
        "capacity": np.array([np.inf, 150.0, 120.0]),
        "tier_people": np.array([[100.0, 200.0], [150.0, 300.0], [50.0, 400.0]]),
        "floor": np.zeros(3),
        "share_cap": np.full(3, np.inf),
        "participants": pd.Index(["A", "B", "C"]),
        "lots": pd.Index(["L1", "L2"]),
    }
    base.update(changes)
    return ProblemData(**base)  # type: ignore[arg-type]


@pytest.fixture
def tiny() -> ProblemData:
    return tiny_problem()


@pytest.fixture(scope="session")
def demo_scenario() -> Scenario:
    text = (resources.files("dosewise") / "data" / "demo_amc92.yaml").read_text(encoding="utf-8")
    return Scenario.model_validate(yaml.safe_load(text))


@pytest.fixture(scope="session")
def demo_world(demo_scenario: Scenario) -> World:
    return build_world(demo_scenario)


@pytest.fixture(scope="session")
def demo_tiers(demo_world: World) -> tuple[np.ndarray, np.ndarray]:
    return synthetic_tier_values(demo_world)
