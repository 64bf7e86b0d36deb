"""Whole-process timing of the commands a user types: each run is a fresh ``dosewise`` process.

Run: ``.venv/bin/python benchmarks/startup.py [--runs N] [--json PATH]``

Times, wall clock from ``subprocess.run`` start to the process's exit (interpreter start-up,
imports, the work, output and interpreter shutdown included), best and median of N runs after
one untimed warm-up run (which fills the OS file cache and dosewise's reference-data cache):

* ``dosewise --help``, ``dosewise --version``, ``dosewise products``
* ``dosewise allocate demo_amc92.yaml`` (the built-in AMC92 scenario, 92 participants)
* ``dosewise round respond OFFER --accept`` on a SQLite ledger holding the demo round (a fresh
  copy of the same ledger for every run, copied outside the timing, so every run records the
  same answer)

The baseline each figure is compared with is the bare interpreter: ``python -c pass`` and
``python -c "import typer, rich"`` (what any Typer + Rich command line pays before its own code).
Goals: --help < 0.3 s, products < 0.5 s, allocate demo < 1.2 s, round respond < 0.8 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, write_results

GOALS = {"--help": 0.3, "--version": 0.3, "products": 0.5, "allocate demo": 1.2, "round respond": 0.8}


def dosewise_command() -> list[str]:
    """The installed console script next to this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("dosewise")
    if script.exists():
        return [str(script)]
    found = shutil.which("dosewise")
    if found is None:
        raise SystemExit("the dosewise command is not installed; pip install -e . first")
    return [found]


def demo_yaml() -> Path:
    return Path(__file__).resolve().parents[1] / "src" / "dosewise" / "data" / "demo_amc92.yaml"


def time_runs(argv: list[str], runs: int, *, cwd: Path, prepare: object = None) -> list[float]:
    """Wall times of ``runs`` processes after one warm-up; ``prepare()`` runs untimed before each."""
    env = {**os.environ, "COLUMNS": "160"}
    times: list[float] = []
    for i in range(runs + 1):
        if callable(prepare):
            prepare()
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
        if i > 0:  # run 0 is the warm-up
            times.append(elapsed)
    return times


def prepare_round(tmp: Path) -> tuple[Path, str]:
    """A SQLite ledger holding the demo round; returns it and one open offer id."""
    db = tmp / "round.db"
    cmd = dosewise_command()
    subprocess.run([*cmd, "round", "open", str(demo_yaml()), "--db", str(db)], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    code = (
        "import sys\n"
        "from dosewise.ledger import open_store\n"
        "from dosewise.rounds import Rounds\n"
        "r = Rounds(open_store(sys.argv[1]))\n"
        "rid = r.rounds()[0]\n"
        "print(sorted(o for o, v in r.state(rid).offers.items() if v['status'] == 'offered')[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(db)], check=True, stdout=subprocess.PIPE, text=True)
    return db, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (after one warm-up)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures "
                        "(default benchmarks/results/startup.json)")
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    cmd = dosewise_command()
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        db, offer = prepare_round(tmp)
        work = tmp / "work.db"

        def fresh_copy() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(str(work) + suffix).unlink(missing_ok=True)
            shutil.copyfile(db, work)

        cases: list[tuple[str, list[str], object]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("python -c 'import typer, rich'", [sys.executable, "-c", "import typer, rich.console"], None),
            ("--help", [*cmd, "--help"], None),
            ("--version", [*cmd, "--version"], None),
            ("products", [*cmd, "products"], None),
            ("allocate demo", [*cmd, "allocate", str(demo_yaml())], None),
            ("round respond", [*cmd, "round", "respond", offer, "--accept", "--db", str(work)], fresh_copy),
        ]
        print(f"{'command':<32} {'best s':>8} {'median s':>9} {'goal s':>7}")
        for label, argv, prep in cases:
            try:
                times = time_runs(argv, args.runs, cwd=tmp, prepare=prep)
            except SystemExit as exc:
                print(f"{label:<32} failed: {str(exc).splitlines()[0]}")
                continue
            best, median = min(times), statistics.median(times)
            goal = GOALS.get(label)
            figures[label] = {"best_s": best, "median_s": median, "runs": len(times)}
            mark = "" if goal is None else f"{goal:7.1f} {'met' if median < goal else 'NOT met'}"
            print(f"{label:<32} {best:8.3f} {median:9.3f} {mark}")
    base = figures.get("python -c 'import typer, rich'")
    results = {
        "benchmark": "startup",
        "environment": env,
        "runs": args.runs,
        "figures": {k: {**v, "goal_s": GOALS.get(k)} for k, v in figures.items()},
        "metrics": {f"{k} median_s": v["median_s"] for k, v in figures.items() if k in GOALS},
        "baseline_note": "bare interpreter + typer/rich import, same number of runs, same warm-up",
        "baseline_median_s": None if base is None else base["median_s"],
    }
    path = write_results("startup", results, args.json)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
