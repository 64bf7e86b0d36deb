"""Data-quality flags: surfaced as rows, never used to drop or zero a participant.

:func:`quality_flags` returns a frame with one row per finding, columns ``participant``
(ISO3), ``week`` (``NaT`` for findings about the participant rather than a week), ``flag``
and ``detail``. Flags:

``zero_cases_with_testing``
    Tests were reported for a period (situation report, or weekly tests) and zero
    confirmed cases. DPRK reported tens of thousands of people tested and no case through
    2021: that is a statement about surveillance, not proof of no transmission.
``no_report``
    Neither cases nor deaths reported for at least ``no_report_weeks`` consecutive weeks
    (default 4) up to and including the week; one row per such week, ``detail`` gives the
    length of the gap.
``negative_correction``
    A negative weekly count (a downward revision of earlier reports).
``implausible_jump``
    A weekly count more than ``jump_factor`` (default 10) times the median of the
    reported counts in the previous ``jump_window`` (default 8) weeks, with at least 4 of
    them reported, *and* at least ``jump_floor`` (default 1,000 cases or 100 deaths): large
    batches of back-logged reports, or a real explosion worth a human look.
``population_missing``
    No positive population for the participant: its per-capita indicators are NaN.
``not_in_feed``
    A participant expected by the caller is absent from the surveillance file.

How the need score treats flags is stated in :func:`dosewise.surveillance.need.need_scores`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from dosewise.surveillance.indicators import to_panel, week_of

__all__ = ["FLAGS", "FLAG_COLUMNS", "quality_flags"]

FLAGS = (
    "implausible_jump",
    "negative_correction",
    "no_report",
    "not_in_feed",
    "population_missing",
    "zero_cases_with_testing",
)
FLAG_COLUMNS = ("participant", "week", "flag", "detail")

Array = npt.NDArray[np.float64]


def _frame(participant: object, week: object, flag: str, detail: object) -> pd.DataFrame:
    return pd.DataFrame({"participant": participant, "week": week, "flag": flag, "detail": detail})


def _trailing_median(x: Array, window: int) -> tuple[Array, Array]:
    """Median and count of reported values in the ``window`` rows *before* each row."""
    t, p = x.shape
    padded = np.concatenate([np.full((window, p), np.nan), x[:-1] if t else x])
    if t == 0:
        return np.zeros((0, p)), np.zeros((0, p))
    win = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)[:t]  # (t, p, window)
    srt = np.sort(win, axis=2)  # NaN sort last
    n = (~np.isnan(win)).sum(axis=2)
    lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0)[..., None], axis=2)[..., 0]
    hi = np.take_along_axis(srt, np.maximum(n // 2, 0)[..., None], axis=2)[..., 0]
    med = np.where(n > 0, (lo + hi) / 2.0, np.nan)
    return med, n.astype(np.float64)


def quality_flags(
    weekly: pd.DataFrame,
    *,
    population: pd.Series | None = None,
    expected: Sequence[str] | pd.Index | None = None,
    sitreps: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
    no_report_weeks: int = 4,
    jump_factor: float = 10.0,
    jump_window: int = 8,
    jump_floor_cases: float = 1_000.0,
    jump_floor_deaths: float = 100.0,
) -> pd.DataFrame:
    """All flags for a weekly feed (see the module docstring), sorted by participant, week, flag.

    ``expected`` lists the participants the caller cares about (absent ones get
    ``not_in_feed``; ``population_missing`` is checked for them, or for every participant
    of the feed when ``expected`` is None). ``sitreps`` is
    :func:`~dosewise.surveillance.readers.read_sitreps` output; ``tests`` a weekly
    ``iso3, week, tests, positives`` frame.
    """
    if no_report_weeks < 1:
        raise ValueError("no_report_weeks must be >= 1")
    parts: list[pd.DataFrame] = []
    panel = to_panel(weekly, ["new_cases", "new_deaths"])
    ids = panel.participants.to_numpy(dtype=object)
    wk = panel.weeks.to_numpy()
    cases, deaths = panel.values["new_cases"], panel.values["new_deaths"]

    # no_report: length of the run of weeks with neither cases nor deaths reported.
    silent = np.isnan(cases) & np.isnan(deaths)
    rows = np.arange(silent.shape[0])[:, None]
    last_seen = np.maximum.accumulate(np.where(silent, -1, rows), axis=0)
    run = rows - last_seen
    t, p = np.nonzero(run >= no_report_weeks)
    parts.append(_frame(ids[p], wk[t], "no_report", [f"no report for {r} weeks" for r in run[t, p]]))

    for name, x, floor in (("cases", cases, jump_floor_cases), ("deaths", deaths, jump_floor_deaths)):
        t, p = np.nonzero(x < 0)
        parts.append(_frame(ids[p], wk[t], "negative_correction", [f"new_{name} = {v:,.0f}" for v in x[t, p]]))
        med, n = _trailing_median(x, jump_window)
        with np.errstate(invalid="ignore"):
            jump = (n >= 4) & (x >= floor) & (x > jump_factor * np.maximum(med, 0.0))
        t, p = np.nonzero(jump)
        parts.append(
            _frame(
                ids[p],
                wk[t],
                "implausible_jump",
                [
                    f"new_{name} = {v:,.0f} vs median {m:,.0f} of the previous {jump_window} weeks"
                    for v, m in zip(x[t, p], med[t, p], strict=True)
                ],
            )
        )

    if sitreps is not None and len(sitreps):
        tested = sitreps["people_tested"].fillna(sitreps["samples_tested"])
        hit = sitreps[(tested > 0) & (sitreps["cases"] == 0)]
        detail = [
            f"{int(n):,} tested {a:%Y-%m-%d}..{b:%Y-%m-%d}, 0 confirmed cases" + (f" ({s})" if s else "")
            for n, a, b, s in zip(
                tested[hit.index],
                hit["period_start"],
                hit["period_end"],
                hit["source"].fillna(""),
                strict=True,
            )
        ]
        parts.append(
            _frame(
                hit["participant"].to_numpy(),
                week_of(hit["period_end"]).to_numpy(),
                "zero_cases_with_testing",
                detail,
            )
        )
    if tests is not None and len(tests):
        hit = tests[(tests["tests"] > 0) & (tests["positives"] == 0)]
        parts.append(
            _frame(
                hit["iso3"].to_numpy(),
                hit["week"].to_numpy(),
                "zero_cases_with_testing",
                [f"{v:,.0f} tests in the week, 0 confirmed cases" for v in hit["tests"]],
            )
        )

    scope = pd.Index(expected if expected is not None else ids)
    if expected is not None:
        absent = scope[~scope.isin(ids)]
        parts.append(_frame(absent.to_numpy(dtype=object), pd.NaT, "not_in_feed", "absent from the surveillance feed"))
    if population is not None:
        pop = pd.to_numeric(population.reindex(scope), errors="coerce")
        missing = scope[~(pop > 0).to_numpy()]
        parts.append(
            _frame(
                missing.to_numpy(dtype=object),
                pd.NaT,
                "population_missing",
                "no population: per-capita indicators are NaN",
            )
        )

    out = pd.concat([x for x in parts if len(x)], ignore_index=True) if any(len(x) for x in parts) else None
    if out is None:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in FLAG_COLUMNS})
    out["week"] = pd.to_datetime(out["week"])
    out["participant"] = out["participant"].astype(object)
    return out.sort_values(["participant", "week", "flag"], kind="stable", na_position="first").reset_index(drop=True)
