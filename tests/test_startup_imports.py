"""Start-up stays light: ``import dosewise`` and the commands that need no data import none of the
heavy libraries (checked in a fresh interpreter through ``sys.modules``, not timed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pandas", "sqlalchemy", "scipy", "matplotlib", "httpx")

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


def run_probe(argv: list[str] | None) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("argv", [None, ["--help"], ["--version"], ["products"], ["products", "--sources"]],
                         ids=["import", "help", "version", "products", "products-sources"])
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
