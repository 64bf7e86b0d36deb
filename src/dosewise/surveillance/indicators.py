"""Indicators per participant and week, computed on dense (weeks × participants) arrays.

The weekly feed is pivoted once into a :class:`Panel` (one float array of shape
``(n_weeks, n_participants)`` per variable, on a contiguous grid of weeks); windows are
differences of cumulative sums along the week axis, so every participant and every week is
computed at once, with no per-participant Python code.

Definitions (weekly data, so 7/14/28 days = 1/2/4 reporting weeks):

- ``cases_per100k_{7,14,28}d``, ``deaths_per100k_{7,14,28}d``: new cases (deaths) reported
  in the last 1, 2 or 4 weeks up to and including the week, per 100,000 population.
  Weeks left blank in the feed (not reported) count as missing, not zero: a window sums the
  weeks that were reported and is NaN only if none was; a window that would reach before
  the first week of the panel is NaN. Negative corrections are kept in the sums (and flagged
  by :mod:`dosewise.surveillance.quality`).
- ``growth``: log ratio of new cases in the last 2 weeks to the 2 weeks before,
  ``log((C[t] + C[t-1] + 1) / (C[t-2] + C[t-3] + 1))`` with window sums clipped at 0; +1
  keeps it finite when a window is zero (0 when both are). ``growth / 2`` is the weekly
  exponential growth rate; ``> 0`` means rising.
- ``doses_per100``: cumulative doses administered per 100 people; ``fully_vaccinated_pct``:
  people with a completed primary series per 100; ``coverage_gap``: ``max(0, target −
  fully vaccinated share)`` as a fraction of the population (target 0.70 by default: WHO's
  global target of 70% coverage by mid-2022, *Strategy to achieve global COVID-19
  vaccination by mid-2022*, Oct 2021). A vaccination figure dated *d* counts from the first
  week label on or after *d* and is carried forward; there is no look-ahead.
- ``delivered_per100``: cumulative doses delivered to the participant per 100 people
  (UNICEF figures via the UNDP vaccine-equity dashboard,
  :func:`~dosewise.surveillance.readers.read_undp_deliveries`), dated and carried forward
  the same way; ``utilisation``: doses administered / doses delivered, both carried forward,
  NaN unless both are known (it can exceed 1: donations or domestic production missing from
  the delivery count, or a later administration figure than delivery figure).
- ``tests_per1000``: tests in the week per 1,000 population; ``positivity``: confirmed
  cases among those tested in the week (NaN where no tests were reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.errors import InputError

__all__ = [
    "DEFAULT_COVERAGE_TARGET",
    "WINDOWS",
    "Panel",
    "compute_indicators",
    "indicator_panel",
    "to_panel",
    "week_of",
    "weekly_tests_from_owid",
    "weekly_tests_from_sitreps",
]

Array = npt.NDArray[np.float64]

WINDOWS: dict[str, int] = {"7d": 1, "14d": 2, "28d": 4}
"""Window name → number of reporting weeks."""

DEFAULT_COVERAGE_TARGET = 0.70
"""WHO's target of 70% of every country's population vaccinated by mid-2022 (WHO, Strategy to
achieve global COVID-19 vaccination by mid-2022, 6 Oct 2021)."""

_WEEK = np.timedelta64(7, "D")


def week_of(dates: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """The week label (a Sunday, as WHO's ``Date_reported``) on or after each date."""
    ts = pd.to_datetime(pd.Series(dates)).dt.normalize()
    return ts + pd.to_timedelta((6 - ts.dt.day_of_week) % 7, unit="D")


@dataclass(frozen=True)
class Panel:
    """Dense weekly arrays: ``values[name]`` has shape ``(len(weeks), len(participants))``."""

    weeks: pd.DatetimeIndex
    participants: pd.Index
    values: dict[str, Array]

    def long(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Back to a tidy frame: ``iso3``, ``week`` and one column per variable."""
        t, p = len(self.weeks), len(self.participants)
        cols: dict[str, Any] = {
            "iso3": np.tile(self.participants.to_numpy(dtype=object), t),
            "week": np.repeat(self.weeks.to_numpy(), p),
        }
        for name in names if names is not None else self.values:
            cols[name] = self.values[name].reshape(-1)
        return pd.DataFrame(cols)


def _grid(weeks: pd.Series) -> tuple[pd.DatetimeIndex, npt.NDArray[np.intp]]:
    w = weeks.to_numpy(dtype="datetime64[D]")
    first, last = w.min(), w.max()
    steps = (w - first) / _WEEK
    if not np.all(steps == np.floor(steps)):
        raise InputError("week labels are not 7 days apart", field="week")
    grid = pd.date_range(first, last, freq="7D")
    return grid, steps.astype(np.intp)


def to_panel(
    weekly: pd.DataFrame,
    columns: Sequence[str],
    *,
    participants: Sequence[str] | pd.Index | None = None,
    weeks: pd.DatetimeIndex | None = None,
) -> Panel:
    """Pivot a tidy ``(iso3, week, …)`` frame into dense arrays (missing cells are NaN).

    ``participants`` fixes the participant axis (codes absent from the frame get all-NaN
    columns; rows for other codes are left out); ``weeks`` fixes the week axis likewise.
    """
    if weeks is None:
        weeks, t_idx = _grid(weekly["week"])
        keep_t = np.ones(len(weekly), dtype=bool)
    else:
        t_idx = weeks.get_indexer(pd.DatetimeIndex(weekly["week"]))
        keep_t = t_idx >= 0
    if participants is None:
        codes, uniq = pd.factorize(weekly["iso3"], sort=True)
        index = pd.Index(uniq, name="iso3")
    else:
        index = pd.Index(participants, name="iso3")
        codes = index.get_indexer(pd.Index(weekly["iso3"]))
    keep = keep_t & (codes >= 0)
    t_idx, p_idx = t_idx[keep], codes[keep]
    shape = (len(weeks), len(index))
    values: dict[str, Array] = {}
    for col in columns:
        arr = np.full(shape, np.nan)
        arr[t_idx, p_idx] = weekly[col].to_numpy(dtype=np.float64, na_value=np.nan)[keep]
        values[col] = arr
    return Panel(weeks=weeks, participants=index, values=values)


def _window_sums(x: Array, k: int) -> Array:
    """Sum of the last ``k`` rows (reported cells only); NaN if none reported or incomplete."""
    reported = ~np.isnan(x)
    zero = np.zeros((1, x.shape[1]))
    cs = np.concatenate([zero, np.cumsum(np.where(reported, x, 0.0), axis=0)])
    cn = np.concatenate([zero, np.cumsum(reported, axis=0, dtype=np.float64)])
    out = np.full_like(x, np.nan)
    if k <= x.shape[0]:
        s = cs[k:] - cs[:-k]
        n = cn[k:] - cn[:-k]
        out[k - 1 :] = np.where(n > 0, s, np.nan)
    return out


def _shift(x: Array, k: int) -> Array:
    out = np.full_like(x, np.nan)
    if k < x.shape[0]:
        out[k:] = x[:-k]
    return out


def _ffill(x: Array) -> Array:
    """Carry the last observed value forward along the week axis."""
    rows = np.arange(x.shape[0])[:, None]
    last = np.maximum.accumulate(np.where(np.isnan(x), -1, rows), axis=0)
    cols = np.broadcast_to(np.arange(x.shape[1]), x.shape)
    out = x[np.maximum(last, 0), cols]
    return np.where(last >= 0, out, np.nan)


def _population(population: pd.Series, index: pd.Index) -> Array:
    pop = pd.to_numeric(population.reindex(index), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(pop > 0, pop, np.nan)


def _divide(num: Array, den: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _dated_panel(
    frame: pd.DataFrame, columns: Sequence[str], index: pd.Index, weeks: pd.DatetimeIndex
) -> dict[str, Array]:
    """Dated cumulative figures (``iso3``, ``date``, ``columns``) on the week grid: a figure
    dated *d* counts from the first week label on or after *d* (the last one wins within a
    week) and is carried forward; weeks before the first figure are NaN (no look-ahead).
    Only the ``columns`` present in ``frame`` are returned."""
    cols = [c for c in columns if c in frame.columns]
    dated = frame.dropna(subset=["date"]).sort_values("date", kind="stable")
    dated = dated.assign(week=week_of(dated["date"]).to_numpy())
    # The last *reported* figure of each column in a week wins (a blank later row does not erase it).
    per_week = dated.groupby(["iso3", "week"], as_index=False, sort=False)[cols].last()
    panel = to_panel(per_week, cols, participants=index, weeks=weeks)
    return {c: _ffill(panel.values[c]) for c in cols}


def weekly_tests_from_sitreps(sitreps: pd.DataFrame) -> pd.DataFrame:
    """Situation-report records → weekly tests: ``iso3``, ``week``, ``tests``, ``positives``.

    ``tests`` is people tested (samples where people are not given). A record covering more
    than 7 days becomes a weekly average (× 7 / days) placed in the week of its last day;
    where several records end in the same week the shortest period wins.
    """
    tests = sitreps["people_tested"].fillna(sitreps["samples_tested"])
    scale = 7.0 / np.maximum(sitreps["days"].to_numpy(dtype=np.float64), 7.0)
    out = pd.DataFrame(
        {
            "iso3": sitreps["participant"].to_numpy(dtype=object),
            "week": week_of(sitreps["period_end"]).to_numpy(),
            "tests": tests.to_numpy(dtype=np.float64) * scale,
            "positives": sitreps["cases"].to_numpy(dtype=np.float64) * scale,
            "days": sitreps["days"].to_numpy(),
        }
    )
    out = out.dropna(subset=["tests"]).sort_values(["iso3", "week", "days"], kind="stable")
    return out.drop_duplicates(["iso3", "week"]).drop(columns="days").reset_index(drop=True)


def weekly_tests_from_owid(owid: pd.DataFrame) -> pd.DataFrame:
    """OWID daily rows (``new_tests``, ``new_cases``) → weekly sums in weeks ending Sunday."""
    if "new_tests" not in owid.columns:
        raise InputError("no new_tests column in the OWID frame", file=owid.attrs.get("source"), field="new_tests")
    week = week_of(owid["date"])
    cases = owid["new_cases"] if "new_cases" in owid.columns else pd.Series(np.nan, index=owid.index)
    frame = pd.DataFrame({"iso3": owid["iso3"], "week": week, "tests": owid["new_tests"], "positives": cases})
    return frame.groupby(["iso3", "week"], as_index=False, sort=True).sum(min_count=1)


def indicator_panel(
    weekly: pd.DataFrame,
    population: pd.Series,
    *,
    vaccination: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
    coverage_target: float = DEFAULT_COVERAGE_TARGET,
    participants: Sequence[str] | pd.Index | None = None,
) -> Panel:
    """All indicators as dense arrays (see the module docstring for definitions).

    ``weekly`` is :func:`~dosewise.surveillance.readers.read_who_weekly` output (``iso3``,
    ``week``, ``new_cases``, ``new_deaths``); ``population`` a Series of persons indexed by
    ISO3 (missing or non-positive → NaN per-capita values); ``vaccination`` has ``iso3``,
    ``date`` and any of ``total_vaccinations``, ``people_fully_vaccinated`` (WHO or OWID
    reader output); ``tests`` has ``iso3``, ``week``, ``tests``, ``positives``
    (:func:`weekly_tests_from_sitreps`, :func:`weekly_tests_from_owid`); ``deliveries`` has
    ``iso3``, ``date``, ``doses_delivered``
    (:func:`~dosewise.surveillance.readers.read_undp_deliveries` output).
    """
    if not 0.0 < coverage_target <= 1.0:
        raise InputError("coverage target must be in (0, 1]", field="coverage_target", value=coverage_target)
    base = to_panel(weekly, ["new_cases", "new_deaths"], participants=participants)
    weeks, index = base.weeks, base.participants
    pop = _population(population, index)[None, :]
    vals: dict[str, Array] = dict(base.values)
    for var, short in (("new_cases", "cases"), ("new_deaths", "deaths")):
        for name, k in WINDOWS.items():
            vals[f"{short}_per100k_{name}"] = _divide(_window_sums(base.values[var], k) * 1e5, pop)
    two = np.maximum(_window_sums(base.values["new_cases"], 2), 0.0)
    vals["growth"] = np.log((two + 1.0) / (_shift(two, 2) + 1.0))

    administered: Array | None = None
    if vaccination is not None and len(vaccination):
        vpanel = _dated_panel(vaccination, ("total_vaccinations", "people_fully_vaccinated"), index, weeks)
        if "total_vaccinations" in vpanel:
            administered = vpanel["total_vaccinations"]
            vals["doses_per100"] = _divide(administered * 100.0, pop)
        if "people_fully_vaccinated" in vpanel:
            share = _divide(vpanel["people_fully_vaccinated"], pop)
            vals["fully_vaccinated_pct"] = share * 100.0
            vals["coverage_gap"] = np.maximum(coverage_target - share, 0.0)

    if deliveries is not None and len(deliveries):
        if "doses_delivered" not in deliveries.columns:
            raise InputError(
                "no doses_delivered column in the deliveries frame",
                file=deliveries.attrs.get("source"),
                field="doses_delivered",
            )
        delivered = _dated_panel(deliveries, ("doses_delivered",), index, weeks)["doses_delivered"]
        vals["delivered_per100"] = _divide(delivered * 100.0, pop)
        if administered is not None:
            vals["utilisation"] = _divide(administered, delivered)

    if tests is not None and len(tests):
        tpanel = to_panel(tests, ["tests", "positives"], participants=index, weeks=weeks)
        vals["tests"] = tpanel.values["tests"]
        vals["tests_per1000"] = _divide(tpanel.values["tests"] * 1e3, pop)
        vals["positivity"] = _divide(tpanel.values["positives"], tpanel.values["tests"])
    return Panel(weeks=weeks, participants=index, values=vals)


def compute_indicators(
    weekly: pd.DataFrame,
    population: pd.Series,
    *,
    vaccination: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
    coverage_target: float = DEFAULT_COVERAGE_TARGET,
    participants: Sequence[str] | pd.Index | None = None,
) -> pd.DataFrame:
    """Tidy indicators, one row per participant and week (``iso3``, ``week``, indicators).

    Same arguments as :func:`indicator_panel`.
    """
    panel = indicator_panel(
        weekly,
        population,
        vaccination=vaccination,
        tests=tests,
        deliveries=deliveries,
        coverage_target=coverage_target,
        participants=participants,
    )
    frame = panel.long()
    frame.attrs["coverage_target"] = coverage_target
    return frame
