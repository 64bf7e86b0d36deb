"""Indicators on the real WHO file, checked against a direct per-country computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dosewise.errors import InputError
from dosewise.surveillance.demo import DPRK_SITREPS
from dosewise.surveillance.indicators import (
    compute_indicators,
    weekly_tests_from_owid,
    weekly_tests_from_sitreps,
)
from dosewise.surveillance.readers import read_sitreps


@pytest.fixture(scope="module")
def indicators(who_weekly: pd.DataFrame, population: pd.Series, owid_vax: pd.DataFrame) -> pd.DataFrame:
    tests = weekly_tests_from_sitreps(read_sitreps(DPRK_SITREPS))
    return compute_indicators(who_weekly, population, vaccination=owid_vax, tests=tests)


def _direct(series: pd.Series, k: int) -> pd.Series:
    """One country, plain pandas: sum of reported weeks in a full window, NaN if none."""
    out = series.rolling(k, min_periods=1).sum()
    reported = series.notna().astype(float).rolling(k, min_periods=1).sum()
    out[reported == 0] = np.nan
    out.iloc[: k - 1] = np.nan
    return out


@pytest.mark.parametrize("iso3", ["IND", "NAM", "BRA", "CIV", "PRK"])
def test_per100k_windows_match_direct(
    iso3: str, who_weekly: pd.DataFrame, population: pd.Series, indicators: pd.DataFrame
) -> None:
    one = who_weekly[who_weekly["iso3"] == iso3].set_index("week").sort_index()
    got = indicators[indicators["iso3"] == iso3].set_index("week").sort_index()
    pop = population[iso3]
    for var, short in (("new_cases", "cases"), ("new_deaths", "deaths")):
        for name, k in (("7d", 1), ("14d", 2), ("28d", 4)):
            want = _direct(one[var], k) * 1e5 / pop
            np.testing.assert_allclose(got[f"{short}_per100k_{name}"].to_numpy(), want.to_numpy(), rtol=1e-12)
    two = _direct(one["new_cases"], 2).clip(lower=0)
    growth = np.log((two + 1) / (two.shift(2) + 1))
    np.testing.assert_allclose(got["growth"].to_numpy(), growth.to_numpy(), rtol=1e-12)


def test_india_delta_wave_is_rising_then_falling(indicators: pd.DataFrame) -> None:
    ind = indicators[indicators["iso3"] == "IND"].set_index("week")
    assert ind.loc["2021-04-25", "growth"] > 0.5
    assert ind.loc["2021-06-13", "growth"] < -0.5


def test_vaccination_carried_forward_without_lookahead(
    indicators: pd.DataFrame, owid_vax: pd.DataFrame, population: pd.Series
) -> None:
    week = pd.Timestamp("2021-09-12")
    v = owid_vax[(owid_vax["iso3"] == "KEN") & (owid_vax["date"] <= week)].dropna(subset=["total_vaccinations"])
    want = v.sort_values("date")["total_vaccinations"].iloc[-1] * 100 / population["KEN"]
    row = indicators[(indicators["iso3"] == "KEN") & (indicators["week"] == week)].iloc[0]
    assert row["doses_per100"] == pytest.approx(want)
    full = (
        owid_vax[(owid_vax["iso3"] == "KEN") & (owid_vax["date"] <= week)]
        .dropna(subset=["people_fully_vaccinated"])
        .sort_values("date")["people_fully_vaccinated"]
        .iloc[-1]
    )
    assert row["coverage_gap"] == pytest.approx(0.70 - full / population["KEN"])
    first = owid_vax[owid_vax["iso3"] == "KEN"]["date"].min()
    before = indicators[(indicators["iso3"] == "KEN") & (indicators["week"] < first)]
    assert before["doses_per100"].isna().all()


def test_sitrep_tests_and_positivity(indicators: pd.DataFrame, population: pd.Series) -> None:
    prk = indicators[(indicators["iso3"] == "PRK") & indicators["tests"].notna()].set_index("week")
    assert list(prk.index) == [
        pd.Timestamp("2021-06-06"),
        pd.Timestamp("2021-08-08"),
        pd.Timestamp("2021-10-17"),
    ]
    assert prk.loc["2021-08-08", "tests_per1000"] == pytest.approx(693 * 1e3 / population["PRK"])
    assert (prk["positivity"] == 0).all()
    assert indicators.loc[indicators["iso3"] == "IND", "tests_per1000"].isna().all()


def test_longer_sitrep_becomes_weekly_average() -> None:
    recs = read_sitreps(
        [
            {
                "participant": "PRK",
                "period_start": "2021-07-19",
                "period_end": "2021-08-01",
                "people_tested": 1400,
                "cases": 14,
            },
            {
                "participant": "PRK",
                "period_start": "2021-07-26",
                "period_end": "2021-08-01",
                "people_tested": 600,
                "cases": 0,
            },
        ]
    )
    weekly = weekly_tests_from_sitreps(recs)
    assert weekly[["tests", "positives"]].iloc[0].tolist() == [600.0, 0.0]  # shortest period wins
    weekly = weekly_tests_from_sitreps(recs.iloc[:1])
    assert weekly[["tests", "positives"]].iloc[0].tolist() == [700.0, 7.0]


def test_owid_tests_weekly_sums() -> None:
    owid = pd.DataFrame(
        {
            "iso3": ["NAM"] * 8,
            "date": pd.date_range("2021-07-05", periods=8),  # Mon 5 .. Mon 12 July
            "new_tests": [100.0, 100, np.nan, 100, 100, 100, 100, 50],
            "new_cases": [10.0, 0, 0, 0, 0, 0, 10, 5],
        }
    )
    weekly = weekly_tests_from_owid(owid)
    assert weekly["week"].tolist() == [pd.Timestamp("2021-07-11"), pd.Timestamp("2021-07-18")]
    assert weekly["tests"].tolist() == [600.0, 50.0]
    assert weekly["positives"].tolist() == [20.0, 5.0]


def test_population_missing_gives_nan_not_zero(who_weekly: pd.DataFrame, population: pd.Series) -> None:
    pop = population.drop("NAM")
    ind = compute_indicators(who_weekly, pop, participants=["NAM", "IND"])
    nam = ind[ind["iso3"] == "NAM"]
    assert nam["cases_per100k_28d"].isna().all()
    assert nam["new_cases"].notna().any()
    assert ind.loc[ind["iso3"] == "IND", "cases_per100k_28d"].notna().any()


def test_bad_coverage_target(who_weekly: pd.DataFrame, population: pd.Series) -> None:
    with pytest.raises(InputError, match="coverage target"):
        compute_indicators(who_weekly, population, coverage_target=1.5)
