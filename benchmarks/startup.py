"""Whole-process timing of the commands a user types: each run is a fresh ``dosewise`` process.

Run: ``.venv/bin/python benchmarks/startup.py [--runs N] [--json PATH]``

Times, wall clock from ``subprocess.run`` start to the process's exit (interpreter start-up,
imports, the work, output and interpreter shutdown included), best and median of N runs after
one untimed warm-up run (which fills the OS file cache, dosewise's reference-data cache and the
bytecode caches: ``PYTHONDONTWRITEBYTECODE`` is dropped from the processes' environment, as a
user's installed copy has its ``.pyc`` files):

* ``dosewise --help``, ``dosewise --version``, ``dosewise products``
* ``dosewise allocate demo_amc92.yaml`` (the built-in AMC92 scenario, 92 participants)
* ``dosewise round respond OFFER --accept`` on a SQLite ledger holding the demo round (a fresh
  copy of the same ledger for every run, copied outside the timing, so every run records the
  same answer)

The baseline each figure is compared with is the bare interpreter: ``python -c pass`` and
``python -c "import typer, rich"`` (what any Typer + Rich command line pays before its own code).
Goals: --help < 0.3 s, products < 0.5 s, allocate demo < 1.2 s, round respond < 0.8 s.

``--before SRC`` also times another source tree of dosewise (e.g. an older commit's ``src``, run
through ``PYTHONPATH`` with the same interpreter and libraries), each command alternating between
the two trees run by run, so both see the same machine load.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, process_env, write_results

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


def launcher(src: Path | None) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run ``dosewise`` (from another source tree when ``src``)."""
    env = process_env()
    if src is None:
        return dosewise_command(), env
    env["PYTHONPATH"] = str(src)
    return [sys.executable, "-c", "import sys; from dosewise.cli import main; sys.argv[0] = 'dosewise'; main()"], env


def time_runs(argv: list[str], runs: int, *, cwd: Path, prepare: object = None,
              env: dict[str, str] | None = None) -> list[float]:
    """Wall times of ``runs`` processes after one warm-up; ``prepare()`` runs untimed before each."""
    return list(interleaved([(argv, env, prepare)], runs, cwd=cwd)[0])


def interleaved(cases: list[tuple[list[str], dict[str, str] | None, object]], runs: int, *,
                cwd: Path) -> list[list[float]]:
    """Times of each case, one warm-up each, then the cases in turn ``runs`` times."""
    times: list[list[float]] = [[] for _ in cases]
    for i in range(runs + 1):
        for k, (argv, env, prepare) in enumerate(cases):
            if callable(prepare):
                prepare()
            t0 = time.perf_counter()
            proc = subprocess.run(argv, cwd=cwd, env=env or process_env(), capture_output=True,
                                  check=False)
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr.decode(errors='replace')}{proc.stdout.decode(errors='replace')[-800:]}")
            if i > 0:  # run 0 is the warm-up
                times[k].append(elapsed)
    return times


def prepare_round(tmp: Path, src: Path | None = None) -> tuple[Path, str]:
    """A SQLite ledger holding the demo round; returns it and one open offer id."""
    db = tmp / ("round.db" if src is None else "round-before.db")
    cmd, env = launcher(src)
    subprocess.run([*cmd, "round", "open", str(demo_yaml()), "--db", str(db)], cwd=tmp, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    code = (
        "import sys\n"
        "from dosewise.ledger import open_store\n"
        "from dosewise.rounds import Rounds\n"
        "r = Rounds(open_store(sys.argv[1]))\n"
        "rid = r.rounds()[0]\n"
        "print(sorted(o for o, v in r.state(rid).offers.items() if v['status'] == 'offered')[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(db)], check=True, stdout=subprocess.PIPE, text=True,
                         env=env)
    return db, out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (after one warm-up)")
    parser.add_argument("--before", type=Path, default=None, help="another dosewise source tree to time alongside")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures "
                        "(default benchmarks/results/startup.json)")
    args = parser.parse_args()
    env = environment()
    print(env["summary"])
    trees: list[tuple[str, Path | None]] = [("after", None)] + ([("before", args.before)] if args.before else [])
    figures: dict[str, dict[str, float]] = {}
    before: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rounds = {label: prepare_round(tmp, src) for label, src in trees}

        copies = {"n": 0}

        def fresh_copy(label: str, argv: list[str]) -> object:
            """Before each run: a fresh copy of the ledger under a new name (dosewise remembers the head
            of every ledger it wrote to, and a copy reset to fewer events would rightly be refused)."""
            db = rounds[label][0]

            def copy() -> None:
                copies["n"] += 1
                work = tmp / f"work-{label}-{copies['n']}.db"
                for suffix in ("", "-wal"):  # the ledger as its last writer left it, WAL included
                    if Path(str(db) + suffix).exists():
                        shutil.copyfile(str(db) + suffix, str(work) + suffix)
                argv[-1] = str(work)
            return copy

        commands: list[tuple[str, list[str]]] = [
            ("--help", ["--help"]), ("--version", ["--version"]), ("products", ["products"]),
            ("allocate demo", ["allocate", str(demo_yaml())]),
        ]
        plain = [("python -c pass", [sys.executable, "-c", "pass"]),
                 ("python -c 'import typer, rich'", [sys.executable, "-c", "import typer, rich.console"])]
        head = f"{'command':<32} {'best s':>8} {'median s':>9}" + ("  before: best s  median s" if args.before else "")
        print(head + "   goal s")
        for label, argv in plain:
            (times,) = interleaved([(argv, None, None)], args.runs, cwd=tmp)
            figures[label] = {"best_s": min(times), "median_s": statistics.median(times), "runs": len(times)}
            print(f"{label:<32} {min(times):8.3f} {statistics.median(times):9.3f}")
        for label, sub in [*commands, ("round respond", ["round", "respond"])]:
            cases = []
            for tree, src in trees:
                cmd, tenv = launcher(src)
                if label == "round respond":
                    argv = [*cmd, "round", "respond", rounds[tree][1], "--accept", "--db", "set-by-fresh_copy"]
                    cases.append((argv, tenv, fresh_copy(tree, argv)))
                else:
                    cases.append(([*cmd, *sub], tenv, None))
            try:
                results = interleaved(cases, args.runs, cwd=tmp)
            except SystemExit as exc:
                if len(cases) == 1:
                    print(f"{label:<32} failed: {str(exc).splitlines()[0]}")
                    continue
                try:  # the other tree may lack the command (e.g. --version): time this tree alone
                    results = [*interleaved(cases[:1], args.runs, cwd=tmp), [math.nan]]
                except SystemExit as again:
                    print(f"{label:<32} failed: {str(again).splitlines()[0]}")
                    continue
            goal = GOALS.get(label)
            row = f"{label:<32} {min(results[0]):8.3f} {statistics.median(results[0]):9.3f}"
            figures[label] = {"best_s": min(results[0]), "median_s": statistics.median(results[0]),
                              "runs": len(results[0])}
            if args.before:
                before[label] = {"best_s": min(results[1]), "median_s": statistics.median(results[1]),
                                 "runs": len(results[1])}
                row += f"          {min(results[1]):8.3f} {statistics.median(results[1]):9.3f}"
            if goal is not None:
                row += f"  {goal:7.1f} {'met' if figures[label]['median_s'] < goal else 'NOT met'}"
            print(row)
    base = figures.get("python -c 'import typer, rich'")
    results_json = {
        "benchmark": "startup",
        "environment": env,
        "runs": args.runs,
        "figures": {k: {**v, "goal_s": GOALS.get(k)} for k, v in figures.items()},
        "before": {"src": str(args.before) if args.before else None, "figures": before},
        "metrics": {f"{k} median_s": v["median_s"] for k, v in figures.items() if k in GOALS},
        "baseline_note": "bare interpreter + typer/rich import, same number of runs, same warm-up",
        "baseline_median_s": None if base is None else base["median_s"],
    }
    path = write_results("startup", results_json, args.json)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
