"""`dosewise allocate` reads a large scenario in a forked child while it imports what comes next
(:mod:`dosewise.cli._reader`, :func:`dosewise.cli._common.load_beside`): the scenario, every refusal
and its message are those of :func:`dosewise.app.load`, whatever happens to the child or the file.
Each end-to-end case runs in a fresh interpreter (one thread, as the command has), which counts the
forks."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dosewise.errors import ScenarioError
from dosewise.yamlread import FAST_YAML_MIN_CHARS

PROBE = """
import hashlib, json, os, pickle, sys, threading
forks = []
real_fork = os.fork
def counting_fork():
    pid = real_fork()
    if pid:
        forks.append(pid)
    return pid
os.fork = counting_fork
path, mode = sys.argv[1], sys.argv[2]
if mode == "child-dies":
    real_dumps = pickle.dumps
    parent = os.getpid()
    def dumps(obj, *a, **k):
        if os.getpid() != parent:
            raise RuntimeError("the child cannot answer")
        return real_dumps(obj, *a, **k)
    pickle.dumps = dumps
if mode == "thread":
    stop = threading.Event()
    threading.Thread(target=stop.wait).start()
from pathlib import Path
from dosewise import app as api
parent = os.getpid()
loads_here = []
real_load = api.load
def counting_load(*a, **k):
    if os.getpid() == parent:
        loads_here.append(1)
    return real_load(*a, **k)
api.load = counting_load
from dosewise import yamlread
real_read = yamlread.read_scenario_file
def reading(*a, **k):
    if os.getpid() != parent and mode == "child-hangs":  # the child says who it is, then reads as if forever
        Path(sys.argv[3]).write_text(str(os.getpid()))
        threading.Event().wait(120)
    return real_read(*a, **k)
yamlread.read_scenario_file = reading
from dosewise.cli import _reader
from dosewise.cli._common import load_beside
if mode == "early":  # as the command line does, before it imports anything
    _reader.start_early(["allocate", "--policy", "covax-pro-rata", path])
from dosewise.errors import DosewiseError
def digest(sc):
    units = sc.participants.units
    h = hashlib.sha256()
    for name in sorted(units.columns):
        col = units.get(name)
        h.update(name.encode() + repr(col.tolist()).encode())
    h.update(sc.model_dump_json(exclude={"participants"}).encode())
    return h.hexdigest()
out = {}
try:
    sc = load_beside(Path(path), "dosewise.registry")
    out["digest"] = digest(sc)
    out["pandas"] = "pandas" in sys.modules
except DosewiseError as exc:
    out["error"] = [type(exc).__name__, str(exc)]
out["loads_here"] = len(loads_here)
try:
    out["reference"] = digest(api.load(Path(path)))
except DosewiseError as exc:
    out["reference_error"] = [type(exc).__name__, str(exc)]
out["forks"] = len(forks)
if mode == "thread":
    stop.set()
print(json.dumps(out))
"""


def _scenario(folder: Path, n: int, *, bad_row: int | None = None) -> Path:
    rng = np.random.default_rng(3)
    units = [{"id": f"U{i:07d}", "population": float(round(rng.lognormal(9, 1)) + 100),
              "parent": ["KEN", "UGA", "NPL"][i % 3]} for i in range(n)]
    if bad_row is not None:
        units[bad_row]["population"] = -5.0
    doc = {"name": "many units", "lots": [{"id": "L0", "product": "CoronaVac", "doses": 400 * n,
                                           "available": "2021-08-30", "expiry": "2022-02-28"}],
           "participants": {"units": units}}
    path = folder / f"units_{n}_{bad_row}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _probe(path: Path, mode: str = "plain") -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path), mode], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = _scenario(tmp_path_factory.mktemp("beside"), 8_000)
    assert path.stat().st_size >= FAST_YAML_MIN_CHARS
    return path


@pytest.mark.parametrize("mode", ["plain", "early"])
def test_large_scenario_read_in_a_child_is_the_scenario_load_reads(large: Path, mode: str) -> None:
    out = _probe(large, mode)
    assert out["forks"] == 1 and out["digest"] == out["reference"] and out["pandas"]
    assert out["loads_here"] == 0, "the child's document is used: the file is not read a second time"


def test_small_scenario_is_read_here(tmp_path: Path) -> None:
    small = _scenario(tmp_path, 50)
    assert small.stat().st_size < FAST_YAML_MIN_CHARS
    out = _probe(small)
    assert out["forks"] == 0 and out["digest"] == out["reference"] and out["pandas"]


@pytest.mark.parametrize("mode", ["plain", "early"])
def test_refusal_of_what_the_child_read_is_the_refusal_load_gives(tmp_path: Path, mode: str) -> None:
    bad = _scenario(tmp_path, 8_000, bad_row=4_321)
    out = _probe(bad, mode)
    assert out["forks"] == 1
    assert out["error"] == out["reference_error"]
    assert "participants.units[4321].population" in out["error"][1]
    assert out["loads_here"] == 0, "the refusal is the command's: the file is not read a second time"


def test_a_yaml_error_in_the_child_is_the_error_load_gives(large: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(large.read_text(encoding="utf-8") + "lots: [unclosed\n", encoding="utf-8")
    out = _probe(broken, "early")
    assert out["forks"] == 1 and out["error"] == out["reference_error"] and out["loads_here"] == 0
    assert "not valid YAML at line" in out["error"][1]


def test_a_scenario_refusal_pickles_whole() -> None:
    """What the child sends back: the same refusal, its problems and located field included."""
    exc = ScenarioError("big.yaml", [("participants.units[3].population", "must be > 0", -5.0),
                                     ("lots", "at least one lot", None)])
    back = pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(back) is ScenarioError and str(back) == str(exc)
    assert (back.file, back.problems, back.field, back.value, back.message) == (
        exc.file, exc.problems, exc.field, exc.value, exc.message)


@pytest.mark.parametrize("mode", ["child-dies", "thread"])
def test_child_that_cannot_answer_or_a_running_thread_reads_here(large: Path, mode: str) -> None:
    out = _probe(large, mode)
    assert out["forks"] == (1 if mode == "child-dies" else 0)
    assert out["digest"] == out["reference"]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # ended, not yet reaped by whoever adopted it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux only")
def test_the_reading_child_ends_with_the_command(large: Path, tmp_path: Path) -> None:
    """A command killed while its child reads (SIGKILL, or SIGTERM's default) leaves no process behind
    to finish the read on its own."""
    import os
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    proc = subprocess.Popen([sys.executable, "-c", PROBE, str(large), "child-hangs", str(pid_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # the child writes its pid once it reads; the probe takes a few seconds to start
            if pid_file.exists() and pid_file.read_text():
                break
            assert proc.poll() is None, "the probe ended before its child read"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert not _gone(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        for _ in range(300):
            if _gone(child):
                break
            time.sleep(0.1)
        alive = not _gone(child)
        if alive:
            os.kill(child, signal.SIGKILL)
        assert not alive, "the child outlived the command"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_command_refuses_a_large_bad_scenario_in_one_line(tmp_path: Path) -> None:
    bad = _scenario(tmp_path, 8_000, bad_row=17)
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "allocate", str(bad)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "participants.units[17].population" in proc.stderr + proc.stdout
