"""Benchmark: the whole WHO weekly file → indicators, flags and need for every participant and week.

Prints the time of each step and the ratio against a plain pandas groupby-apply of the
same indicators, run in the same process, after checking both give the same numbers.
Target: under 1 s for read + indicators + flags + need. Reads ``../shared/data``.

    .venv/bin/python benchmarks/surveillance.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dosewise.surveillance.indicators import indicator_panel
from dosewise.surveillance.need import need_panel
from dosewise.surveillance.quality import quality_flags
from dosewise.surveillance.readers import read_who_weekly
from dosewise.world import participants_from_reference

DATA = Path(os.environ.get("DOSEWISE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
WHO = DATA / "surveillance" / "WHO-COVID-19-global-data.csv"
INDICATORS = [
    "cases_per100k_7d",
    "cases_per100k_14d",
    "cases_per100k_28d",
    "deaths_per100k_7d",
    "deaths_per100k_14d",
    "deaths_per100k_28d",
    "growth",
]


def baseline(weekly: pd.DataFrame, population: pd.Series) -> pd.DataFrame:
    """The same indicators, one participant at a time (groupby-apply)."""

    def one(g: pd.DataFrame) -> pd.DataFrame:
        g = g.sort_values("week")
        pop = g["pop"].iloc[0]
        pop = pop if pop > 0 else np.nan
        out = pd.DataFrame({"week": g["week"].to_numpy()})
        for var, short in (("new_cases", "cases"), ("new_deaths", "deaths")):
            x = g[var].reset_index(drop=True)
            seen = x.notna().astype(float)
            for name, k in (("7d", 1), ("14d", 2), ("28d", 4)):
                s = x.rolling(k, min_periods=1).sum()
                s[seen.rolling(k, min_periods=1).sum() == 0] = np.nan
                s.iloc[: k - 1] = np.nan
                out[f"{short}_per100k_{name}"] = s * 1e5 / pop
                if short == "cases" and k == 2:
                    two = s.clip(lower=0)
                    out["growth"] = np.log((two + 1) / (two.shift(2) + 1))
        return out

    frame = weekly.assign(pop=weekly["iso3"].map(population))
    res = frame.groupby("iso3", sort=True)[["week", "new_cases", "new_deaths", "pop"]].apply(one)
    return res.reset_index(level=0).reset_index(drop=True)


def main() -> None:
    codes = sorted(read_who_weekly(WHO)["iso3"].unique())
    participants = participants_from_reference(codes)  # reference data: not part of the timing

    t0 = time.perf_counter()
    weekly = read_who_weekly(WHO)
    t1 = time.perf_counter()
    panel = indicator_panel(weekly, participants["population"], participants=participants.index)
    t2 = time.perf_counter()
    flags = quality_flags(weekly, population=participants["population"], expected=participants.index)
    t3 = time.perf_counter()
    need = need_panel(panel.values, participants)
    t4 = time.perf_counter()
    ours = panel.long(INDICATORS)
    t5 = time.perf_counter()

    b0 = time.perf_counter()
    base = baseline(weekly, participants["population"])
    b1 = time.perf_counter()

    merged = ours.merge(base, on=["iso3", "week"], suffixes=("", "_base"))
    assert len(merged) == len(ours) == len(base), (len(merged), len(ours), len(base))
    for col in INDICATORS:
        np.testing.assert_allclose(merged[col], merged[f"{col}_base"], rtol=1e-9, equal_nan=True)

    n_weeks, n_part = need.shape
    ind_time = (t2 - t1) + (t5 - t4)
    print(
        f"WHO weekly file: {len(weekly):,} rows, {n_part} participants x {n_weeks} weeks "
        f"({weekly.attrs['dropped_conveyance_rows']} conveyance rows dropped)"
    )
    print(f"  read + validate      {t1 - t0:7.3f} s")
    print(f"  indicators (arrays)  {ind_time:7.3f} s   ({len(INDICATORS)} indicators, tidy frame included)")
    print(f"  quality flags        {t3 - t2:7.3f} s   ({len(flags):,} flags)")
    print(f"  need, every week     {t4 - t3:7.3f} s   ({np.isfinite(need).sum():,} scores)")
    print(f"  total                {t5 - t0:7.3f} s   (target < 1 s)")
    print(f"baseline groupby-apply indicators {b1 - b0:7.3f} s; same numbers: yes")
    print(f"ratio baseline / ours (indicators): {(b1 - b0) / ind_time:6.1f}x")


if __name__ == "__main__":
    main()
