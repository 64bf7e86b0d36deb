"""Shared by the benchmark scripts: the machine and versions, equal-footing timing, JSON results.

Every script prints :func:`environment`'s summary first and writes its figures with
:func:`write_results` to ``benchmarks/results/<name>.json``; ``benchmarks/compare.py`` compares
those files with the stored ``benchmarks/baseline.json``. Figures under ``metrics`` are
seconds (lower is better) and are what the comparison checks.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("dosewise", "numpy", "pandas", "pyarrow", "scipy", "pydantic", "sqlalchemy", "highspy", "typer", "rich")


def cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cores": cores(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    shown = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    env["summary"] = (f"Python {env['python']} on {env['platform']}, {env['cores']} cores "
                      f"(host {env['cpu_count']}); {shown}")
    return env


def process_env(**extra: str) -> dict[str, str]:
    """The environment for a timed ``dosewise`` process: this one's, but bytecode caches allowed
    (``PYTHONDONTWRITEBYTECODE`` dropped), so the warm-up run writes them as a user's first run
    does and the timed runs do not compile every module from source again."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "COLUMNS": "160", **extra}


def timed(fn: Callable[[], Any], *, warmup: int, repeat: int) -> tuple[dict[str, float], Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed; best, median, all times."""
    result: Any = None
    for _ in range(warmup):
        result = fn()
    times: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": statistics.median(times), "repeat": repeat,
            "warmup": warmup}, result


def ratio(baseline: float, ours: float) -> float:
    return baseline / ours if ours > 0 else math.inf


def write_results(name: str, results: dict[str, Any], path: Path | None = None) -> Path:
    out = path or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return out


__all__ = ["RESULTS", "cores", "environment", "process_env", "ratio", "timed", "write_results"]
if __name__ == "__main__":  # pragma: no cover - a helper module, not a benchmark
    print(environment()["summary"])
    sys.exit(0)
