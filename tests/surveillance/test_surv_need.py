"""Need score: real-data ranking, the missing-from-feed rule, and invariants (hypothesis)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dosewise.surveillance.demo import DPRK_SITREPS
from dosewise.surveillance.indicators import compute_indicators, indicator_panel, weekly_tests_from_sitreps
from dosewise.surveillance.need import (
    COMPONENTS,
    INCOME_SCORES,
    NeedWeights,
    need_for,
    need_panel,
    need_scores,
)
from dosewise.surveillance.quality import quality_flags
from dosewise.surveillance.readers import read_sitreps

AS_OF = dt.date(2021, 8, 11)  # a Wednesday: the week used is Sunday 8 Aug 2021
SAMPLE = ["PRK", "IND", "NAM", "CIV", "KEN", "BGD", "HTI", "UKR", "NPL", "SOM"]


@pytest.fixture(scope="module")
def participants(master: pd.DataFrame, population: pd.Series) -> pd.DataFrame:
    """A participants frame as the World provides it (share 65+ here from a simple proxy:
    the WPP file is not needed for the invariants; the CLI test uses the real reference)."""
    frame = pd.DataFrame(index=pd.Index(SAMPLE))
    frame["population"] = population.reindex(SAMPLE)
    rng = np.random.default_rng(7)
    frame["share_65plus"] = rng.uniform(0.02, 0.12, len(SAMPLE))
    frame["income_level"] = master.loc[SAMPLE, "wb_income_hdx"].replace("", None)
    return frame


@pytest.fixture(scope="module")
def indicators(who_weekly: pd.DataFrame, population: pd.Series, owid_vax: pd.DataFrame) -> pd.DataFrame:
    return compute_indicators(
        who_weekly,
        population,
        vaccination=owid_vax,
        tests=weekly_tests_from_sitreps(read_sitreps(DPRK_SITREPS)),
    )


def test_scores_on_real_data(
    indicators: pd.DataFrame, participants: pd.DataFrame, who_weekly: pd.DataFrame, population: pd.Series
) -> None:
    flags = quality_flags(who_weekly, population=population, expected=SAMPLE, sitreps=read_sitreps(DPRK_SITREPS))
    scores = need_scores(indicators, participants, as_of=AS_OF, flags=flags)
    assert list(scores.index) == SAMPLE
    assert (scores["week"] == pd.Timestamp("2021-08-08")).all()
    ranked = scores.drop(index="SOM")
    assert ranked["need"].between(0, 1).all()
    assert sorted(scores["rank"]) == list(range(1, len(SAMPLE) + 1))
    assert "zero_cases_with_testing" in scores.loc["PRK", "flags"]
    # no population: not ranked on what is left, but listed last with the flag
    assert "population_missing" in scores.loc["SOM", "flags"]
    assert np.isnan(scores.loc["SOM", "need"]) and scores.loc["SOM", "rank"] == len(SAMPLE)
    row = indicators[(indicators["iso3"] == "IND") & (indicators["week"] == "2021-08-08")].iloc[0]
    assert scores.loc["IND", "deaths_per100k_28d"] == row["deaths_per100k_28d"]
    # recompute IND's need from its component scores and the weights
    w = NeedWeights().as_dict()
    s = {k: scores.loc["IND", f"s_{k}"] for k in COMPONENTS}
    avail = {k: v for k, v in s.items() if not np.isnan(v)}
    want = sum(w[k] * v for k, v in avail.items()) / sum(w[k] for k in avail)
    assert scores.loc["IND", "need"] == pytest.approx(want)
    assert scores.loc["IND", "s_income"] == INCOME_SCORES["Lower middle"]


def test_absent_from_feed_is_flagged_not_zero(indicators: pd.DataFrame, participants: pd.DataFrame) -> None:
    feed = indicators[indicators["iso3"] != "KEN"]
    scores = need_scores(feed, participants, as_of=AS_OF)
    ken = scores.loc["KEN"]
    assert "not_in_feed" in ken["flags"]
    assert np.isnan(ken["threat"]) and np.isnan(ken["s_deaths"]) and np.isnan(ken["s_incidence"])
    assert not np.isnan(ken["need"]) and ken["need"] > 0
    # ranked on vulnerability and coverage only: its need is the weighted mean of those
    w = NeedWeights().as_dict()
    avail = [k for k, (g, _) in COMPONENTS.items() if g != "threat" and not np.isnan(ken[f"s_{k}"])]
    want = sum(w[k] * ken[f"s_{k}"] for k in avail) / sum(w[k] for k in avail)
    assert ken["need"] == pytest.approx(want)
    # with zero threat instead it would rank differently: the rule is not "threat = 0"
    zeroed = sum(w[k] * ken[f"s_{k}"] for k in avail) / sum(w[k] for k in [*avail, "deaths", "incidence", "trend"])
    assert ken["need"] > zeroed


def test_need_panel_equals_need_scores(
    who_weekly: pd.DataFrame, population: pd.Series, owid_vax: pd.DataFrame, participants: pd.DataFrame
) -> None:
    panel = indicator_panel(who_weekly, population, vaccination=owid_vax, participants=participants.index)
    allweeks = need_panel(panel.values, participants)
    ind = panel.long()
    for when in ("2020-06-14", "2021-08-08", "2022-01-16"):
        t = panel.weeks.get_loc(pd.Timestamp(when))
        scores = need_scores(ind, participants, as_of=pd.Timestamp(when).date())
        np.testing.assert_allclose(allweeks[t], scores["need"].to_numpy(), rtol=1e-12)


def test_weights_are_a_validated_model() -> None:
    w = NeedWeights()
    assert sum(w.as_dict().values()) == pytest.approx(1.0)
    assert w.as_dict()["coverage_gap"] == pytest.approx(19.5 / 100.0)
    assert "Jain" in w.source
    assert NeedWeights.model_validate({"deaths": 1.0}).deaths == 1.0
    with pytest.raises(ValidationError):
        NeedWeights(deaths=-1)
    with pytest.raises(ValidationError):
        NeedWeights.model_validate({"death": 1.0})
    with pytest.raises(ValidationError):
        NeedWeights(**dict.fromkeys(COMPONENTS, 0.0))


def test_need_for_aligns(indicators: pd.DataFrame, participants: pd.DataFrame) -> None:
    scores = need_scores(indicators, participants, as_of=AS_OF)
    order = ["NAM", "ZZZ", "IND"]
    got = need_for(order, scores)
    assert got[0] == scores.loc["NAM", "need"] and got[2] == scores.loc["IND", "need"]
    assert np.isnan(got[1])


# ---- invariants on synthetic participants -------------------------------------------------

_INCOME = st.sampled_from([*INCOME_SCORES, None])
_VALUE = st.floats(0, 1e3, allow_nan=False)


def _synthetic(
    rows: list[tuple[float, float, float, float, float, str | None, float]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    codes = [f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(len(rows))]
    week = pd.Timestamp("2021-08-08")
    ind = pd.DataFrame(
        {
            "iso3": codes,
            "week": week,
            "deaths_per100k_28d": [r[0] for r in rows],
            "cases_per100k_28d": [r[1] for r in rows],
            "growth": [r[2] - 500 for r in rows],
            "coverage_gap": [r[3] / 1e3 * 0.7 for r in rows],
        }
    )
    parts = pd.DataFrame(
        {
            "population": 1e6,
            "share_65plus": [r[4] / 1e4 for r in rows],
            "income_level": [r[5] for r in rows],
            "health_system_capacity": [r[6] / 10 for r in rows],
        },
        index=codes,
    )
    return ind, parts


_ROWS = st.lists(st.tuples(_VALUE, _VALUE, _VALUE, _VALUE, _VALUE, _INCOME, _VALUE), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, data=st.data())
def test_permutation_does_not_change_scores(rows: list[tuple], data: st.DataObject) -> None:  # type: ignore[type-arg]
    ind, parts = _synthetic(rows)
    perm = data.draw(st.permutations(list(parts.index)))
    a = need_scores(ind, parts, as_of=AS_OF)
    b = need_scores(ind.sample(frac=1.0, random_state=1), parts.loc[perm], as_of=AS_OF)
    pd.testing.assert_frame_equal(a.loc[perm], b)


_RAISE = {  # column, frame, amount added (more need)
    "deaths": ("deaths_per100k_28d", "ind", 5.0),
    "incidence": ("cases_per100k_28d", "ind", 50.0),
    "trend": ("growth", "ind", 0.5),
    "coverage_gap": ("coverage_gap", "ind", 0.05),
    "older": ("share_65plus", "parts", 0.01),
    "health_system": ("health_system_capacity", "parts", -5.0),
}


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, data=st.data())
def test_monotone_in_each_component(rows: list[tuple], data: st.DataObject) -> None:  # type: ignore[type-arg]
    ind, parts = _synthetic(rows)
    who = data.draw(st.integers(0, len(rows) - 1))
    comp = data.draw(st.sampled_from(sorted(_RAISE)))
    col, where, step = _RAISE[comp]
    before = need_scores(ind, parts, as_of=AS_OF)
    ind2, parts2 = ind.copy(), parts.copy()
    target = ind2 if where == "ind" else parts2
    pos = who if where == "ind" else parts2.index[who]
    target.loc[pos, col] = target.loc[pos, col] + step
    after = need_scores(ind2, parts2, as_of=AS_OF)
    code = parts.index[who]
    assert after.loc[code, "need"] >= before.loc[code, "need"] - 1e-12
    assert after.loc[code, f"s_{comp}"] >= before.loc[code, f"s_{comp}"] - 1e-12


@settings(max_examples=40, deadline=None)
@given(rows=_ROWS, data=st.data())
def test_income_level_monotone(rows: list[tuple], data: st.DataObject) -> None:  # type: ignore[type-arg]
    ind, parts = _synthetic(rows)
    who = parts.index[data.draw(st.integers(0, len(rows) - 1))]
    levels = ["High", "Upper middle", "Lower middle", "Low"]
    needs = []
    for level in levels:
        p = parts.copy()
        p.loc[who, "income_level"] = level
        needs.append(need_scores(ind, p, as_of=AS_OF).loc[who, "need"])
    assert needs == sorted(needs)
