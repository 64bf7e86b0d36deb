"""The fixed scenario behind the stored regression baseline (``tests/impact/baseline.json``).

Ten named countries across income levels and both contact sources, one AstraZeneca lot and
one Pfizer lot allocated pro rata, R0 2.5 falling to Rt 1.8 on day 120, 10% immune at the start,
natural immunity lasting 365 days on average, IFR doubled below high income (Levin et al. 2022),
365 days. ``scripts/refresh_impact_baseline.py``
writes the figures; ``tests/impact/test_baseline.py`` checks them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dosewise.impact.outcomes import run_impact
from dosewise.impact.parameters import ImpactParams

BASELINE_CODES = ("NGA", "IND", "BRA", "ITA", "JPN", "HTI", "ETH", "VNM", "EGY", "BOL")
BASELINE_PARAMS = ImpactParams(days=365, r0=2.5, rt={0: 2.5, 120: 1.8}, prior_immunity=0.1,
                               natural_immunity_days=365.0, health_system="levin2022")


def baseline_scenario() -> dict[str, Any]:
    return {
        "name": "impact regression baseline",
        "participants": {"include": list(BASELINE_CODES), "defaults": {"capacity_per_week": 2_000_000}},
        "lots": [
            {"id": "AZ", "product": "AZD1222", "doses": 60_000_000, "available": dt.date(2021, 2, 1),
             "expiry": dt.date(2021, 8, 1)},
            {"id": "PF", "product": "BNT162b2", "doses": 20_000_000, "available": dt.date(2021, 3, 1),
             "expiry": dt.date(2021, 6, 1)},
        ],
        "policy": {"name": "covax-pro-rata"},
    }


def baseline_figures() -> dict[str, Any]:
    """Summary figures of the fixed scenario (totals and per-participant deaths averted)."""
    from dosewise.registry import get_policy
    from dosewise.scenario import Scenario
    from dosewise.world import build_world

    sc = Scenario.model_validate(baseline_scenario())
    world = build_world(sc)
    alloc = get_policy(sc.policy.name)(world, sc.policy)
    res = run_impact(world, alloc, BASELINE_PARAMS)
    summary = {k: v for k, v in res.summary().items() if isinstance(v, int | float)}
    per = res.by_participant
    return {
        "summary": summary,
        "deaths_averted": {str(k): float(v) for k, v in per["deaths_averted"].items()},
        "deaths_no_vaccine": {str(k): float(v) for k, v in per["deaths_no_vaccine"].items()},
    }
