"""Start-up stays light: ``import dosewise`` and the commands that need no data import none of the
heavy libraries (checked in a fresh interpreter through ``sys.modules``, not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "sqlalchemy", "scipy", "matplotlib", "httpx", "dask", "distributed")
ANSWER_HEAVY = ("pandas", "pyarrow", "numpy", "scipy", "highspy", "matplotlib", "httpx", "yaml", "alembic",
                "dask", "fastapi")
"""What answering an offer must not import: it reads the round's events and appends one (the ledger's
SQLAlchemy store and pydantic payloads), and needs no data frames, arrays, solver, scenario file,
migration tool or server."""

PROBE = """
import contextlib, io, json, sys
argv = json.loads(sys.argv[1])
out = io.StringIO()
code = 0
if argv is None:
    import dosewise  # noqa: F401
else:
    from dosewise.cli import main
    with contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code or 0
heavy = json.loads(sys.argv[2])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in loaded}), "some": loaded[:5],
                  "out": out.getvalue()[-300:]}))
"""


def run_probe(argv: list[str] | None, heavy: tuple[str, ...] = HEAVY) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(heavy)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("argv", [None, ["--help"], ["--version"], ["products"], ["products", "--sources"],
                                  ["sweep", "--help"]],
                         ids=["import", "help", "version", "products", "products-sources", "sweep-help"])
def test_no_heavy_imports(argv: list[str] | None) -> None:
    result = run_probe(argv)
    assert result["code"] == 0, result
    assert result["heavy"] == [], f"{argv}: imported {result['some']}"
    if argv == ["products"]:
        assert "sources of every figure" in str(result["out"])  # the command did its work


def test_the_probe_sees_heavy_imports() -> None:
    """The check can fail: a command that reads a scenario does import pandas."""
    from importlib import resources

    demo = str(resources.files("dosewise") / "data" / "demo_amc92.yaml")
    result = run_probe(["allocate", demo])
    assert result["code"] == 0, result
    assert "pandas" in result["heavy"]  # type: ignore[operator]


def test_the_probe_sees_dask(tmp_path: Path) -> None:
    """A sweep that runs does import Dask (and only the sweep path does)."""
    spec = tmp_path / "sweep.yaml"
    spec.write_text("scenario: demo\npolicies: [covax-pro-rata]\ngrid: {r0: [2.0], days: [30]}\n", encoding="utf-8")
    result = run_probe(["sweep", str(spec), "--scheduler", "synchronous"])
    assert result["code"] == 0, result
    assert "dask" in result["heavy"]  # type: ignore[operator]


def test_round_respond_stays_light(tmp_path: Path) -> None:
    """``round respond`` on a SQLite ledger holding the demo round records the answer without
    importing pandas, NumPy, the solver, YAML or Alembic (the round's state is a projection of its
    events; the pass that re-offers doses, which needs arrays, runs in ``round advance``)."""
    from importlib import resources

    from dosewise.app import Desk, load

    db = tmp_path / "round.db"
    with Desk.open(str(db), create=True) as desk:
        state = desk.open_round(load(Path(str(resources.files("dosewise") / "data" / "demo_amc92.yaml"))))
        offer = sorted(o for o, v in state.offers.items() if v["status"] == "offered")[0]
    result = run_probe(["round", "respond", offer, "--accept", "--db", str(db)], ANSWER_HEAVY)
    assert result["code"] == 0, result
    assert f"recorded offer.accepted for {offer}" in str(result["out"])  # the command did its work
    assert result["heavy"] == [], f"round respond imported {result['some']}"
    with Desk.open(str(db)) as desk:
        assert desk.round(state.round_id).offers[offer]["status"] == "accepted"


def test_round_status_stays_light(tmp_path: Path) -> None:
    """``round status`` prints the per-lot balance and the offer counts without pandas (a round
    opened from its snapshot keeps its offers as columns; counting statuses builds no frame)."""
    from importlib import resources

    from dosewise.app import Desk, load

    db = tmp_path / "round.db"
    with Desk.open(str(db), create=True) as desk:
        rid = desk.open_round(load(Path(str(resources.files("dosewise") / "data" / "demo_amc92.yaml")))).round_id
    result = run_probe(["round", "status", rid, "--db", str(db)], ANSWER_HEAVY)
    assert result["code"] == 0, result
    assert "offers: offered 165" in str(result["out"]) and "│ yes" in str(result["out"])
    assert result["heavy"] == [], f"round status imported {result['some']}"


def test_the_answer_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """The same check fails for a command that does need arrays: ``round offers`` builds a frame of
    the offers (``round status`` no longer does: it prints per-lot rows and status counts)."""
    from importlib import resources

    from dosewise.app import Desk, load

    db = tmp_path / "round.db"
    with Desk.open(str(db), create=True) as desk:
        rid = desk.open_round(load(Path(str(resources.files("dosewise") / "data" / "demo_amc92.yaml")))).round_id
    result = run_probe(["round", "offers", rid, "--db", str(db)], ANSWER_HEAVY)
    assert result["code"] == 0, result
    assert "pandas" in result["heavy"]  # type: ignore[operator]
