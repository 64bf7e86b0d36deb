"""A documented, reproducible need score: threat, vulnerability and coverage gap.

COVAX's phase-2 threat-and-vulnerability formula was never published; this one is, and
anyone can recompute it from the inputs.

Components (raw value → normalised score in [0, 1], higher = more need)
-----------------------------------------------------------------------
Threat, from the surveillance indicators of the week of ``as_of`` (the Sunday on or before):

- ``deaths``: deaths per 100k over the last 28 days (``deaths_per100k_28d``);
- ``incidence``: cases per 100k over the last 28 days (``cases_per100k_28d``);
- ``trend``: ``growth``, the log ratio of the last 2 weeks' cases to the 2 weeks before.

Vulnerability, from the participants frame:

- ``older``: share of the population aged 65+ (``share_65plus``);
- ``income``: World Bank income level, fixed scores Low 1, Lower middle 2/3, Upper middle
  1/3, High 0 (lower capacity to purchase vaccines = more need);
- ``health_system``: optional column ``health_system_capacity`` (e.g. the WHO UHC service
  coverage index, 0–100); *lower* capacity = more need.

Coverage:

- ``coverage_gap``: ``max(0, target − share fully vaccinated)`` from the indicators;
- ``high_risk_gap``: ``share_65plus × coverage_gap``, the share of the population that is
  aged 65+ and not fully vaccinated, assuming coverage is uniform across ages.

Normalisation: each continuous component is turned into its percentile rank among the
participants that have a value, ``(rank − 1) / (n − 1)`` with average ranks for ties (0.5
when only one participant has a value). Ranks are robust to the heavy tails of per-capita
rates and to the scale of each source, and make the score invariant to the order of the
participants and monotone in each raw component. ``income`` uses its fixed scores.

Composite: ``need = Σ wᵢ·sᵢ / Σ wᵢ`` over the components that *are available for that
participant*, so ``need`` is in [0, 1]. ``rank`` 1 is the greatest need; participants whose
every component is missing come last with NaN need.

Treatment of flags (the default policy)
---------------------------------------
A flagged participant keeps its score and carries its flags (``flags`` column) so a human
sees them next to the number. A participant absent from the surveillance feed, or with no
report in the 28-day window, has NaN threat components — *not zero* — so it is ranked by
its vulnerability and coverage components only, and is flagged (``not_in_feed`` or
``no_threat_data``). A participant with no population has NaN per-capita components and the
flag ``population_missing``.

Default weights
---------------
Jain V, Atun R, Hansen P, Lorgelly P. *Which countries need COVID-19 vaccines the most?
Development of a prioritisation tool.* BMC Public Health 22, 1818 (2022),
doi:10.1186/s12889-022-13948-6 — mean weights from a discrete-choice experiment with 28
experts (9 factors; the abstract reports the top five). Mapping to our components:

====================================================  ======  =====================
Jain et al. factor                                    weight  dosewise component
====================================================  ======  =====================
proportion of overall population not fully vaccinated  19.5   ``coverage_gap``
proportion of high-risk population not fully vacc.     16.1   ``high_risk_gap``
health system capacity                                 14.2   ``health_system``
capacity to purchase vaccines                          11.9   ``income``
proportion of the population clinically vulnerable     11.3   ``older`` (age is the
                                                              largest clinical risk)
(the four remaining factors, 27.0 points together)     27.0   threat: ``deaths`` 13.5,
                                                              ``incidence`` 9.0,
                                                              ``trend`` 4.5
====================================================  ======  =====================

The threat split of the remaining 27.0 points is a dosewise assumption, not from the paper.
Weights are renormalised to sum to 1 (and per participant over the available components).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dosewise.errors import DataSourceError, InputError

__all__ = [
    "COMPONENTS",
    "INCOME_SCORES",
    "NeedWeights",
    "need_for",
    "need_from_feed",
    "need_panel",
    "need_scores",
]

Array = npt.NDArray[np.float64]

COMPONENTS: dict[str, tuple[str, str]] = {
    # component: (group, raw column)
    "deaths": ("threat", "deaths_per100k_28d"),
    "incidence": ("threat", "cases_per100k_28d"),
    "trend": ("threat", "growth"),
    "older": ("vulnerability", "share_65plus"),
    "income": ("vulnerability", "income_level"),
    "health_system": ("vulnerability", "health_system_capacity"),
    "coverage_gap": ("coverage", "coverage_gap"),
    "high_risk_gap": ("coverage", "high_risk_gap"),
}
"""Component → (group, raw column in the output frame)."""

INCOME_SCORES: dict[str, float] = {
    "Low": 1.0,
    "Lower middle": 2.0 / 3.0,
    "Upper middle": 1.0 / 3.0,
    "High": 0.0,
}

JAIN_2022 = (
    "Jain V, Atun R, Hansen P, Lorgelly P. Which countries need COVID-19 vaccines the most? "
    "BMC Public Health 22:1818 (2022), doi:10.1186/s12889-022-13948-6; threat split of the "
    "remaining 27.0 points is a dosewise assumption"
)


class NeedWeights(BaseModel):
    """Weights of the need components (any non-negative scale; renormalised to sum 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deaths: float = Field(13.5, ge=0)
    incidence: float = Field(9.0, ge=0)
    trend: float = Field(4.5, ge=0)
    older: float = Field(11.3, ge=0)  # Jain 2022: clinically vulnerable
    income: float = Field(11.9, ge=0)  # Jain 2022: capacity to purchase vaccines
    health_system: float = Field(14.2, ge=0)  # Jain 2022: health-system capacity
    coverage_gap: float = Field(19.5, ge=0)  # Jain 2022: population not fully vaccinated
    high_risk_gap: float = Field(16.1, ge=0)  # Jain 2022: high-risk population not fully vaccinated
    source: str = JAIN_2022

    @model_validator(mode="after")
    def _positive(self) -> NeedWeights:
        if sum(self.as_dict().values()) <= 0:
            raise ValueError("at least one need weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        """Component → weight, renormalised to sum to 1."""
        raw = {name: float(getattr(self, name)) for name in COMPONENTS}
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()} if total > 0 else raw


def _pct_rank(x: Array) -> Array:
    """Row-wise percentile rank in [0, 1] among non-NaN cells: (rank − 1) / (n − 1)."""
    frame = pd.DataFrame(x)
    ranks = frame.rank(axis=1, method="average", na_option="keep").to_numpy(dtype=np.float64)
    n = (~np.isnan(x)).sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 1, (ranks - 1.0) / (n - 1.0), 0.5)
    return np.where(np.isnan(x), np.nan, out)


def _participant_arrays(participants: pd.DataFrame) -> dict[str, Array]:
    """Static components from the participants frame, shape (n,)."""
    for col in ("population", "share_65plus", "income_level"):
        if col not in participants.columns:
            raise InputError("participants frame lacks a required column", field=col)
    income = participants["income_level"].astype(object)
    unknown = income.notna() & ~income.isin(list(INCOME_SCORES))
    if unknown.any():
        code = str(unknown.idxmax())
        raise InputError(
            f"income_level must be one of {', '.join(INCOME_SCORES)} or missing",
            field=f"participants.{code}.income_level",
            value=income.loc[code],
        )
    out = {
        "population": pd.to_numeric(participants["population"], errors="coerce").to_numpy(np.float64, na_value=np.nan),
        "share_65plus": pd.to_numeric(participants["share_65plus"], errors="coerce").to_numpy(
            np.float64, na_value=np.nan
        ),
        "income_score": income.map(INCOME_SCORES).to_numpy(np.float64, na_value=np.nan),
    }
    hs = participants.get("health_system_capacity")
    out["health_system_capacity"] = (
        pd.to_numeric(hs, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        if hs is not None
        else np.full(len(participants), np.nan)
    )
    return out


def _scores(raw: dict[str, Array], income_score: Array) -> dict[str, Array]:
    """Normalised component scores, all (W, n)."""
    return {
        "deaths": _pct_rank(raw["deaths_per100k_28d"]),
        "incidence": _pct_rank(raw["cases_per100k_28d"]),
        "trend": _pct_rank(raw["growth"]),
        "older": _pct_rank(raw["share_65plus"]),
        "income": np.broadcast_to(income_score, raw["growth"].shape).copy(),
        "health_system": _pct_rank(-raw["health_system_capacity"]),
        "coverage_gap": _pct_rank(raw["coverage_gap"]),
        "high_risk_gap": _pct_rank(raw["high_risk_gap"]),
    }


def _composite(scores: dict[str, Array], weights: dict[str, float]) -> Array:
    num = np.zeros_like(next(iter(scores.values())))
    den = np.zeros_like(num)
    for name, w in weights.items():
        s = scores[name]
        have = ~np.isnan(s)
        num += np.where(have, w * np.nan_to_num(s), 0.0)
        den += np.where(have, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _raw_from_indicators(ind: dict[str, Array], static: dict[str, Array], shape: tuple[int, int]) -> dict[str, Array]:
    def get(col: str) -> Array:
        return ind[col] if col in ind else np.full(shape, np.nan)

    gap = get("coverage_gap")
    older = np.broadcast_to(static["share_65plus"], shape)
    return {
        "deaths_per100k_28d": get("deaths_per100k_28d"),
        "cases_per100k_28d": get("cases_per100k_28d"),
        "growth": get("growth"),
        "share_65plus": older.copy(),
        "health_system_capacity": np.broadcast_to(static["health_system_capacity"], shape).copy(),
        "coverage_gap": gap,
        "high_risk_gap": older * gap,
    }


SUPPLY_COLUMNS = ("doses_per100", "delivered_per100", "utilisation")
"""Indicators :func:`need_scores` copies into its output when present, for the reader of the
table; they do not enter the score."""


def _as_of_week(as_of: dt.date) -> pd.Timestamp:
    ts = pd.Timestamp(as_of).normalize()
    return ts - pd.Timedelta(days=(ts.day_of_week + 1) % 7)


def need_scores(
    indicators: pd.DataFrame,
    participants: pd.DataFrame,
    *,
    as_of: dt.date,
    weights: NeedWeights | None = None,
    flags: pd.DataFrame | None = None,
    flag_lookback_weeks: int = 8,
) -> pd.DataFrame:
    """Need score per participant as of a date, with every component shown.

    ``indicators`` is :func:`~dosewise.surveillance.indicators.compute_indicators` output;
    ``participants`` is indexed by ISO3 with ``population``, ``share_65plus`` (0–1),
    ``income_level`` ("Low", "Lower middle", "Upper middle", "High" or missing) and
    optionally ``health_system_capacity``. The week used is the Sunday on or before
    ``as_of``. ``flags`` (from :func:`~dosewise.surveillance.quality.quality_flags`) are
    attached when their week lies in the ``flag_lookback_weeks`` weeks up to that week, or
    has no week; ``not_in_feed``, ``no_threat_data`` and ``population_missing`` are always
    derived here.

    Returns a frame indexed by ``participant`` (the order of ``participants``) with the raw
    columns, one ``s_<component>`` score per component, the group means ``threat``,
    ``vulnerability`` and ``coverage`` (weighted, over available components), ``need``,
    ``rank`` and ``flags`` (names joined by ``"; "``). Flag treatment: see the module
    docstring — a participant without surveillance data gets NaN threat, never zero, and is
    ranked on its other components; a participant without a population gets NaN need and is
    not ranked (per-capita threat and coverage cannot be computed for it).
    """
    w = (weights or NeedWeights()).as_dict()
    index = pd.Index(participants.index.astype(str), name="participant")
    if index.has_duplicates:
        raise InputError("participants index has duplicate codes", value=list(index[index.duplicated()]))
    week = _as_of_week(as_of)
    static = _participant_arrays(participants)
    n = len(index)
    at = indicators[indicators["week"] == week]
    in_feed = index.isin(indicators["iso3"].unique())
    row = at.drop_duplicates("iso3").set_index("iso3").reindex(index)
    ind = {c: row[c].to_numpy(np.float64, na_value=np.nan)[None, :] for c in row.columns if c != "week"}
    raw = _raw_from_indicators(ind, static, (1, n))
    scores = _scores(raw, static["income_score"])
    need = _need(scores, w, static["population"])[0]

    out = pd.DataFrame(index=index)
    out["week"] = week
    for col in ("deaths_per100k_28d", "cases_per100k_28d", "growth", "share_65plus"):
        out[col] = raw[col][0]
    out["income_level"] = participants["income_level"].to_numpy(dtype=object)
    out["health_system_capacity"] = raw["health_system_capacity"][0]
    out["coverage_gap"] = raw["coverage_gap"][0]
    out["high_risk_gap"] = raw["high_risk_gap"][0]
    for col in SUPPLY_COLUMNS:  # shown, not scored
        if col in ind:
            out[col] = ind[col][0]
    for name in COMPONENTS:
        out[f"s_{name}"] = scores[name][0]
    for group in ("threat", "vulnerability", "coverage"):
        names = [k for k, (g, _) in COMPONENTS.items() if g == group]
        out[group] = _composite({k: scores[k] for k in names}, {k: w[k] for k in names})[0]
    out["need"] = need
    out["rank"] = out["need"].rank(ascending=False, method="min", na_option="bottom").astype(np.int64)

    notes: dict[str, list[str]] = {code: [] for code in index}
    if flags is not None and len(flags):
        lo = week - pd.Timedelta(weeks=flag_lookback_weeks)
        when = flags["week"]
        recent = flags[flags["participant"].isin(index) & (when.isna() | ((when > lo) & (when <= week)))]
        for code, flag in recent[["participant", "flag"]].drop_duplicates().itertuples(index=False):
            notes[code].append(flag)
    threat_missing = np.isnan(scores["deaths"][0]) & np.isnan(scores["incidence"][0])
    out.loc[threat_missing, "threat"] = np.nan  # no surveillance: no threat value, whatever the trend says
    for code, absent, no_threat, pop in zip(index, ~in_feed, threat_missing, static["population"], strict=True):
        if absent:
            notes[code].append("not_in_feed")
        elif no_threat:
            notes[code].append("no_threat_data")
        if not pop > 0:
            notes[code].append("population_missing")
    out["flags"] = ["; ".join(sorted(set(v))) for v in notes.values()]
    out.attrs["weights"] = w
    out.attrs["weights_source"] = (weights or NeedWeights()).source
    return out


def need_panel(
    indicator_values: dict[str, Array],
    participants: pd.DataFrame,
    *,
    weights: NeedWeights | None = None,
) -> Array:
    """Need for every week at once: ``indicator_values`` are the dense arrays of an
    :class:`~dosewise.surveillance.indicators.Panel` whose participant axis is
    ``participants.index``; returns an array of shape ``(n_weeks, n_participants)`` equal,
    week by week, to :func:`need_scores`' ``need`` column.
    """
    w = (weights or NeedWeights()).as_dict()
    static = _participant_arrays(participants)
    shape = next(iter(indicator_values.values())).shape
    raw = _raw_from_indicators(indicator_values, static, shape)
    return _need(_scores(raw, static["income_score"]), w, static["population"])


def _need(scores: dict[str, Array], weights: dict[str, float], population: Array) -> Array:
    """The composite; a participant without a population cannot be compared per capita, so it
    is not ranked (need NaN, listed last, flagged population_missing) rather than ranked on
    what is left."""
    return np.where(population > 0, _composite(scores, weights), np.nan)


def need_for(participants_index: Sequence[str] | pd.Index, scores_frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Need aligned to ``participants_index`` (NaN where a participant has no score).

    The hook for policies: the reallocation order sorts by it, and ``covax-need-weighted``
    allocates in proportion to ``population × need``.
    """
    need = scores_frame["need"]
    return np.asarray(need.reindex(pd.Index(participants_index).astype(str)).to_numpy(np.float64, na_value=np.nan))


def need_from_feed(
    participants: pd.DataFrame,
    weekly: pd.DataFrame,
    *,
    as_of: dt.date,
    vaccination: pd.DataFrame | None = None,
    sitreps: pd.DataFrame | None = None,
    deliveries: pd.DataFrame | None = None,
    weights: NeedWeights | None = None,
    no_report_weeks: int = 4,
) -> pd.DataFrame:
    """The whole chain for a participants frame (e.g. ``world.participants``): indicators
    from the weekly feed (participants' own ``population``), quality flags, need scores.
    ``deliveries`` (:func:`~dosewise.surveillance.readers.read_undp_deliveries`) adds the
    ``delivered_per100`` and ``utilisation`` columns; they do not change the score."""
    from dosewise.surveillance.indicators import compute_indicators, weekly_tests_from_sitreps
    from dosewise.surveillance.quality import quality_flags

    if len(weekly):
        first, last = weekly["week"].min(), weekly["week"].max()
        if not first <= pd.Timestamp(as_of) < last + pd.Timedelta(days=7):
            raise DataSourceError(
                f"as of {as_of} lies outside the weekly file, which runs from {first:%Y-%m-%d} to {last:%Y-%m-%d}: "
                "need scores there would rank on vulnerability alone; pick a date inside, or a newer file"
            )
    pop = participants["population"]
    tests = weekly_tests_from_sitreps(sitreps) if sitreps is not None and len(sitreps) else None
    indicators = compute_indicators(
        weekly, pop, vaccination=vaccination, tests=tests, deliveries=deliveries, participants=participants.index
    )
    indicators = indicators[indicators["iso3"].isin(set(weekly["iso3"]))]
    flags = quality_flags(
        weekly, population=pop, expected=participants.index, sitreps=sitreps, no_report_weeks=no_report_weeks
    )
    return need_scores(indicators, participants, as_of=as_of, weights=weights, flags=flags)
