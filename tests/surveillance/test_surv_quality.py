"""Data-quality flags on the real WHO feed and on small constructed feeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dosewise.surveillance.demo import DPRK_SITREPS
from dosewise.surveillance.quality import quality_flags
from dosewise.surveillance.readers import read_sitreps


def _feed(cases: list[float], deaths: list[float] | None = None, iso3: str = "NAM") -> pd.DataFrame:
    n = len(cases)
    return pd.DataFrame(
        {
            "iso3": iso3,
            "week": pd.date_range("2021-01-03", periods=n, freq="7D"),
            "new_cases": cases,
            "new_deaths": deaths if deaths is not None else [0.0] * n,
        }
    )


def test_dprk_zero_cases_with_testing(who_weekly: pd.DataFrame) -> None:
    flags = quality_flags(who_weekly, sitreps=read_sitreps(DPRK_SITREPS))
    hit = flags[flags["flag"] == "zero_cases_with_testing"]
    assert set(hit["participant"]) == {"PRK"}
    assert len(hit) == len(DPRK_SITREPS)
    assert hit["detail"].str.contains("693 tested 2021-07-30..2021-08-05, 0 confirmed cases").any()
    assert pd.Timestamp("2021-08-08") in set(hit["week"])


def test_participant_absent_from_feed_is_flagged(who_weekly: pd.DataFrame, population: pd.Series) -> None:
    feed = who_weekly[who_weekly["iso3"] != "PRK"]
    flags = quality_flags(feed, population=population, expected=["PRK", "NAM", "SOM"])
    absent = flags[flags["flag"] == "not_in_feed"]
    assert absent["participant"].tolist() == ["PRK"]
    assert absent["week"].isna().all()
    missing_pop = flags[flags["flag"] == "population_missing"]["participant"].tolist()
    assert missing_pop == ["SOM"]  # WPP 2024 as shipped lacks Somalia


def test_negative_corrections_on_real_feed(who_weekly: pd.DataFrame) -> None:
    flags = quality_flags(who_weekly)
    neg = flags[flags["flag"] == "negative_correction"]
    expected = int((who_weekly["new_cases"] < 0).sum() + (who_weekly["new_deaths"] < 0).sum())
    assert len(neg) == expected > 0
    assert neg["detail"].str.match(r"new_(cases|deaths) = -").all()


def test_no_report_runs() -> None:
    nan = np.nan
    feed = _feed([5, nan, nan, nan, nan, nan, 3, nan], [0, nan, nan, nan, nan, nan, 0, nan])
    flags = quality_flags(feed, no_report_weeks=4)
    nr = flags[flags["flag"] == "no_report"]
    assert nr["week"].tolist() == list(pd.date_range("2021-01-03", periods=8, freq="7D")[4:6])
    assert nr["detail"].tolist() == ["no report for 4 weeks", "no report for 5 weeks"]
    assert quality_flags(feed, no_report_weeks=6).query("flag == 'no_report'").empty
    # deaths reported while cases are blank counts as a report
    feed = _feed([nan] * 6, [1.0] * 6)
    assert quality_flags(feed).query("flag == 'no_report'").empty


def test_implausible_jump_rule() -> None:
    base = [100.0, 120, 90, 110, 100, 95, 105, 100]
    flags = quality_flags(_feed([*base, 1_500.0, 100.0]))
    jump = flags[flags["flag"] == "implausible_jump"]
    assert jump["week"].tolist() == [pd.Timestamp("2021-01-03") + pd.Timedelta(weeks=8)]
    assert "1,500 vs median 100" in jump["detail"].iloc[0]
    # below the absolute floor: not flagged even though > 10x
    small = quality_flags(_feed([1.0] * 8 + [500.0]))
    assert small.query("flag == 'implausible_jump'").empty
    # 9x the median: not flagged
    assert quality_flags(_feed([*base, 900.0])).query("flag == 'implausible_jump'").empty
