"""Benchmark: the whole WHO weekly file → indicators, flags and need for every participant and week.

Prints the time of each step and the ratio against the same indicators in plain vectorised
pandas (grouped running sums differenced k weeks back, no Python function per participant), run in the same process
with the same warm-up and number of runs, after checking both give the same numbers.
Target: under 1 s for read + indicators + flags + need. Reads ``../shared/data``.

    .venv/bin/python benchmarks/surveillance.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, ratio, timed, write_results
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
    """The same indicators in plain vectorised pandas, as a competent pandas user would write them:
    one sort, then per-participant running sums (``groupby.cumsum``) differenced ``k`` rows back
    (``groupby.shift``) for the k-week windows; no Python function per participant."""
    frame = weekly[["iso3", "week", "new_cases", "new_deaths"]].sort_values(["iso3", "week"], kind="stable")
    frame = frame.reset_index(drop=True)
    pop = frame["iso3"].map(population).astype(float)
    pop = pop.where(pop > 0)
    key = frame["iso3"]
    position = frame.groupby(key, sort=False).cumcount()
    out = frame[["iso3", "week"]].copy()
    for var, short in (("new_cases", "cases"), ("new_deaths", "deaths")):
        running = frame[var].fillna(0.0).groupby(key, sort=False).cumsum()
        seen = frame[var].notna().astype(float).groupby(key, sort=False).cumsum()
        for name, k in (("7d", 1), ("14d", 2), ("28d", 4)):
            s = running - running.groupby(key, sort=False).shift(k).fillna(0.0)
            n_seen = seen - seen.groupby(key, sort=False).shift(k).fillna(0.0)
            s = s.where((n_seen > 0) & (position >= k - 1))
            out[f"{short}_per100k_{name}"] = s * 1e5 / pop
            if short == "cases" and k == 2:
                two = s.clip(lower=0)
                out["growth"] = np.log((two + 1) / (two.groupby(key, sort=False).shift(2) + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each step (after 1 warm-up)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    codes = sorted(read_who_weekly(WHO)["iso3"].unique())
    participants = participants_from_reference(codes)  # reference data: not part of the timing
    pop = participants["population"]
    warm, rep = 1, args.repeat

    read, weekly = timed(lambda: read_who_weekly(WHO), warmup=warm, repeat=rep)
    ind, panel = timed(lambda: indicator_panel(weekly, pop, participants=participants.index).long(INDICATORS),
                       warmup=warm, repeat=rep)
    flags_t, flags = timed(lambda: quality_flags(weekly, population=pop, expected=participants.index),
                           warmup=warm, repeat=rep)
    values = indicator_panel(weekly, pop, participants=participants.index).values
    need_t, need = timed(lambda: need_panel(values, participants), warmup=warm, repeat=rep)
    base_t, base = timed(lambda: baseline(weekly, pop), warmup=warm, repeat=rep)

    merged = panel.merge(base, on=["iso3", "week"], suffixes=("", "_base"))
    assert len(merged) == len(panel) == len(base), (len(merged), len(panel), len(base))
    for col in INDICATORS:
        np.testing.assert_allclose(merged[col], merged[f"{col}_base"], rtol=1e-9, equal_nan=True)

    n_weeks, n_part = need.shape
    total = read["median_s"] + ind["median_s"] + flags_t["median_s"] + need_t["median_s"]
    r = ratio(base_t["median_s"], ind["median_s"])
    print(f"WHO weekly file: {len(weekly):,} rows, {n_part} participants x {n_weeks} weeks "
          f"({weekly.attrs['dropped_conveyance_rows']} conveyance rows dropped); median of {rep} runs after "
          f"{warm} warm-up, every step and the baseline")
    print(f"  read + validate      {read['median_s']:7.3f} s")
    print(f"  indicators (arrays)  {ind['median_s']:7.3f} s   ({len(INDICATORS)} indicators, tidy frame included)")
    print(f"  quality flags        {flags_t['median_s']:7.3f} s   ({len(flags):,} flags)")
    print(f"  need, every week     {need_t['median_s']:7.3f} s   ({np.isfinite(need).sum():,} scores)")
    print(f"  total                {total:7.3f} s   (target < 1 s)")
    print(f"baseline: vectorised pandas (grouped running sums), same indicators {base_t['median_s']:7.3f} s; "
          "same numbers: yes")
    print(f"ratio baseline / ours (indicators): {r:6.1f}x")
    results = {
        "benchmark": "surveillance",
        "environment": env,
        "rows": len(weekly),
        "steps": {"read": read, "indicators": ind, "flags": flags_t, "need": need_t},
        "baseline": {"what": "vectorised pandas: grouped cumsum differenced k rows back, same indicators", **base_t},
        "ratio_indicators": r,
        "metrics": {"surveillance read median_s": read["median_s"],
                    "surveillance indicators median_s": ind["median_s"],
                    "surveillance flags median_s": flags_t["median_s"],
                    "surveillance need median_s": need_t["median_s"]},
    }
    print(f"wrote {write_results('surveillance', results, args.json)}")


if __name__ == "__main__":
    main()
