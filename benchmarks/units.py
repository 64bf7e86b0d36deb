"""Scenario → world → allocation for many sub-national units, timed as whole ``dosewise allocate`` processes.

Run: ``.venv/bin/python benchmarks/units.py [--runs N] [--sizes 100000,1000000] [--no-yaml]``

For each size a scenario names its units in a CSV file beside it (``participants.units_file``);
for 100,000 units the same units are also listed inline in the YAML. Each run is a fresh
``dosewise allocate SCENARIO`` process (start-up, parse, validation, world, allocation, table),
timed from start to exit, with its peak resident memory (``wait4`` in a small launcher process); median of N
runs after one warm-up. Goals: 100,000 units < 1.5 s, 1,000,000 < 15 s and < 1.5 GB.

Baselines, same runs and warm-up, each a fresh Python process that only reads the units into memory:
for the CSV scenario ``pandas.read_csv`` of the units file; for the inline-YAML scenario
``yaml.load(text, Loader=yaml.CSafeLoader)`` of the scenario file (PyYAML on libyaml, the plain way
to read YAML in Python, with none of dosewise's checks: duplicate keys, limits, validation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, process_env, ratio, write_results
from startup import dosewise_command

PRODUCTS = ["AZD1222", "Covishield", "BNT162b2", "mRNA-1273", "Ad26.COV2.S", "BBIBP-CorV", "CoronaVac",
            "NVX-CoV2373"]
BASELINES = {"csv": "python + pandas.read_csv", "yaml": "python + yaml.load, CSafeLoader"}
GOALS = {100_000: (1.5, None), 1_000_000: (15.0, 1.5 * 2**30)}


def write_scenarios(folder: Path, n: int, *, inline: bool) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    pops = rng.lognormal(10, 1.2, n).round() + 100
    parents = np.array(["KEN", "UGA", "TZA", "ETH", "NGA"])[rng.integers(0, 5, n)]
    ids = np.char.add("U", np.char.zfill(np.arange(n).astype(str), 7))
    csv = folder / f"units_{n}.csv"
    with open(csv, "w", encoding="utf-8") as fh:
        fh.write("id,population,parent\n")
        fh.writelines(f"{i},{p:.0f},{c}\n" for i, p, c in zip(ids.tolist(), pops.tolist(), parents.tolist(),
                                                             strict=True))
    lots = [{"id": f"L{i}", "product": p, "doses": int(500 * n * (i + 1)), "available": "2021-03-01",
             "expiry": "2021-12-31"} for i, p in enumerate(PRODUCTS)]
    base = {"name": f"{n:,} units", "lots": lots, "policy": {"buffer": 0.05}}
    out = {"csv": folder / f"units_{n}_csv.yaml"}
    out["csv"].write_text(yaml.safe_dump({**base, "participants": {"units_file": csv.name}}, sort_keys=False))
    if inline:
        units = [{"id": i, "population": float(p), "parent": c}
                 for i, p, c in zip(ids.tolist(), pops.tolist(), parents.tolist(), strict=True)]
        out["yaml"] = folder / f"units_{n}_inline.yaml"
        out["yaml"].write_text(yaml.safe_dump({**base, "participants": {"units": units}}, sort_keys=False),
                               encoding="utf-8")
    out["units_csv"] = csv
    return out


LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps([time.perf_counter() - t0, os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024]))
"""
"""Starts the measured process from a small one (about 10 MiB): a process started straight from this one would
count this one's memory in its peak (the kernel folds the parent's resident size into the child's peak when
the child execs after a vfork), so every figure would be at least this benchmark's own size."""


def run_once(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall time (fork to exit) and peak resident bytes of one process, measured by a small launcher."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], cwd=cwd, env=process_env(), capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"launcher failed ({proc.returncode}): {proc.stderr[-2000:]}")
    elapsed, code, peak = json.loads(proc.stdout.strip().splitlines()[-1])
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}): {proc.stderr[-2000:]}")
    return float(elapsed), int(peak)


def measure(argv: list[str], cwd: Path, runs: int) -> dict[str, float]:
    run_once(argv, cwd)  # warm-up: OS file cache, dosewise's reference-data cache
    times, peaks = [], []
    for _ in range(runs):
        t, peak = run_once(argv, cwd)
        times.append(t)
        peaks.append(peak)
    return {"best_s": min(times), "median_s": statistics.median(times), "peak_rss_bytes": max(peaks), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--no-yaml", action="store_true", help="skip the inline-YAML 100,000-unit scenario")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    print(f"whole processes, median of {args.runs} runs after 1 warm-up; peak RSS is the largest of the runs")
    cmd = dosewise_command()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for n in (int(x) for x in args.sizes.split(",")):
            files = write_scenarios(folder, n, inline=n <= 100_000 and not args.no_yaml)
            floors = {"csv": measure([sys.executable, "-c", "import sys, pandas; pandas.read_csv(sys.argv[1])",
                                      str(files["units_csv"])], folder, args.runs)}
            if "yaml" in files:
                floors["yaml"] = measure([sys.executable, "-c", "import sys, yaml; yaml.load(open(sys.argv[1], "
                                          "encoding='utf-8').read(), Loader=yaml.CSafeLoader)", str(files["yaml"])],
                                         folder, args.runs)
            goal_s, goal_mem = GOALS.get(n, (None, None))
            for kind in ("csv", "yaml"):
                if kind not in files:
                    continue
                floor = floors[kind]
                what = BASELINES[kind]
                # run from another folder: the units file resolves against the scenario's folder
                ours = measure([*cmd, "allocate", str(files[kind])], folder.parent, args.runs)
                r = ratio(floor["median_s"], ours["median_s"])
                met = "" if goal_s is None else (" goal met" if ours["median_s"] < goal_s and
                                                 (goal_mem is None or ours["peak_rss_bytes"] < goal_mem)
                                                 else " goal NOT met")
                print(f"{n:>9,} units from {kind.upper():<4}  dosewise allocate {ours['median_s']:7.2f} s, "
                      f"peak {ours['peak_rss_bytes'] / 2**20:7.0f} MiB   baseline ({what}) "
                      f"{floor['median_s']:6.2f} s   ours/baseline {1 / r:5.1f}×{met}")
                figures[f"{kind}_{n}"] = {"ours": ours, "baseline": floor, "baseline_is": what, "goal_s": goal_s,
                                          "goal_peak_bytes": goal_mem}
    metrics = {f"units allocate {k} median_s": v["ours"]["median_s"] for k, v in figures.items()}
    out = write_results("units", {"benchmark": "units", "environment": env, "figures": figures, "metrics": metrics,
                                  "baseline": "fresh python process: pandas.read_csv(units file) for CSV; "
                                              "yaml.load(scenario, CSafeLoader) for inline YAML"},
                        args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
