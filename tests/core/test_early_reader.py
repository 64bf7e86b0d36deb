"""The command line starts reading a large scenario before it imports anything (:mod:`dosewise.cli._reader`):
which argument it reads, that it keeps to the options the command really has, and that an answer about a
file that has changed since, or about another file, is never used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dosewise import app as api
from dosewise.cli import _reader
from dosewise.cli._common import load_beside

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reading child is Linux only")


def _scenario(path: Path, n: int, doses: int = 5_000_000) -> Path:
    units = [{"id": f"U{i:06d}", "population": float(1_000 + 37 * i), "parent": ["KEN", "UGA"][i % 2]}
             for i in range(n)]
    doc = {"name": "units", "lots": [{"id": "L0", "product": "CoronaVac", "doses": doses,
                                      "available": "2021-08-30", "expiry": "2022-02-28"}],
           "participants": {"units": units}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("argv", "expected"), [
    (["allocate", "s.yaml"], "s.yaml"),
    (["allocate", "--policy", "optimal", "s.yaml"], "s.yaml"),
    (["allocate", "--out", "rows.csv", "--all", "s.yaml", "--r0", "2"], "s.yaml"),
    (["allocate", "--days", "90", "--prior-immunity", "0.1", "--health-system", "none", "--priority",
      "pro-rata", "s.yaml"], "s.yaml"),
    (["allocate", "--", "-odd.yaml"], "-odd.yaml"),
    (["allocate", "-"], "-"),
    (["allocate", "s.yaml", "--help"], "s.yaml"),  # the scenario comes first: help after it is Typer's to show
    (["allocate", "--help", "s.yaml"], None),
    (["allocate", "--out", "rows.csv"], None),
    (["allocate"], None),
    (["round", "propose", "s.yaml"], None),  # only the commands in READS
    (["--version"], None),
    ([], None),
])
def test_the_scenario_argument_is_the_one_typer_would_take(argv: list[str], expected: str | None) -> None:
    assert _reader.scenario_argument(argv) == expected


def test_the_options_taking_a_value_are_the_commands_own() -> None:
    """:data:`READS` must list every option of the command that takes a value (else the value, a file,
    would be taken for the scenario and read in vain) and no other."""
    import typer.main

    from dosewise.cli import app

    group = typer.main.get_command(app)
    for name, options in _reader.READS.items():
        command = group.commands[name]  # type: ignore[attr-defined]
        taking = {opt for p in command.params if p.param_type_name == "option" and not p.is_flag and not p.count
                  for opt in p.opts}
        assert taking and options == frozenset(taking), name


def _wait_until_it_has_answered(reader: _reader.Reader) -> None:
    """Block until the child has ended (its answer fits the pipe), without reaping it."""
    os.waitid(os.P_PID, reader.pid, os.WEXITED | os.WNOWAIT)


def test_an_answer_about_the_file_as_it_was_is_not_used(tmp_path: Path) -> None:
    path = _scenario(tmp_path / "s.yaml", 20)
    reader = _reader.fork_reader(path)
    assert reader is not None
    _wait_until_it_has_answered(reader)
    _scenario(path, 20, doses=6_000_000)  # rewritten after the child read it
    assert _reader.collect(reader) == ("", None)

    same = _reader.fork_reader(path)
    assert same is not None
    kind, document = _reader.collect(same)
    assert kind == "document" and document["lots"][0]["doses"] == 6_000_000


def test_the_command_reads_a_changed_file_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _scenario(tmp_path / "s.yaml", 20)
    reader = _reader.fork_reader(path)
    assert reader is not None
    monkeypatch.setattr(_reader, "_early", reader)
    _wait_until_it_has_answered(reader)
    _scenario(path, 20, doses=6_000_000)
    sc = load_beside(path)
    assert sc.lots[0].doses == 6_000_000 and _reader._early is None


def test_a_child_reading_another_file_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _scenario(tmp_path / "s.yaml", 20)
    other = _scenario(tmp_path / "other.yaml", 30)
    reader = _reader.fork_reader(path)
    assert reader is not None
    monkeypatch.setattr(_reader, "_early", reader)
    assert len(load_beside(other).participants.units) == 30
    with pytest.raises(ChildProcessError):  # killed and reaped: nothing left behind
        os.waitpid(reader.pid, os.WNOHANG)


@pytest.mark.parametrize("token", ["demo", "./demo", ".//demo"])
def test_demo_is_not_a_file_to_read(token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dosewise allocate demo`` (or ``./demo``: the same path) names the built-in scenario even where a large
    file called ``demo`` exists, as :func:`dosewise.app.load` has it."""
    monkeypatch.chdir(tmp_path)
    _scenario(tmp_path / "demo", 6_000)
    assert (tmp_path / "demo").stat().st_size >= _reader.MIN_BYTES
    _reader.start_early(["allocate", token])
    assert _reader._early is None
    assert load_beside(Path(token)).name == api.load("demo").name
    reader = _reader.fork_reader(Path(token))  # even a child reading the file is not taken for it
    assert reader is not None
    monkeypatch.setattr(_reader, "_early", reader)
    assert load_beside(Path(token)).name == api.load("demo").name
    with pytest.raises(ChildProcessError):
        os.waitpid(reader.pid, os.WNOHANG)


def test_the_command_allocates_what_the_file_says(tmp_path: Path) -> None:
    """End to end: the command started by its entry point, reading in its child, writes the rows an
    in-process allocation of the same file gives."""
    path = _scenario(tmp_path / "big.yaml", 8_000)
    assert path.stat().st_size >= _reader.MIN_BYTES
    out = tmp_path / "rows.csv"
    proc = subprocess.run([sys.executable, "-m", "dosewise.cli", "allocate", "--out", str(out), str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    expected = api.allocate(api.load(path)).frame()
    got = pd.read_csv(out, keep_default_na=False)
    assert got["doses"].tolist() == expected["doses"].tolist()
    assert got["participant"].tolist() == expected["participant"].tolist()
    assert int(got["doses"].sum()) > 0


def test_a_command_that_fails_first_leaves_no_child(tmp_path: Path) -> None:
    """A flag refused before the scenario is read: the child started for it is stopped and reaped when the
    command ends, and the refusal is the command's usual one."""
    from dosewise.cli import main

    path = _scenario(tmp_path / "big.yaml", 8_000)
    assert path.stat().st_size >= _reader.MIN_BYTES
    started: list[_reader.Reader] = []
    real = _reader.fork_reader

    def recording(p: Path) -> _reader.Reader | None:
        reader = real(p)
        if reader is not None:
            started.append(reader)
        return reader

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_reader, "fork_reader", recording)
        with pytest.raises(SystemExit) as ended:
            main(["allocate", "--days", "99999", str(path)])
    assert ended.value.code == 2
    assert len(started) == 1 and _reader._early is None
    with pytest.raises(ChildProcessError):
        os.waitpid(started[0].pid, os.WNOHANG)


def test_children_reaped_by_the_system_still_answer(tmp_path: Path) -> None:
    """With SIGCHLD ignored (a parent may start the command so), the system reaps the child itself: its
    answer is still used, and nothing fails with 'No child processes'."""
    import signal

    path = _scenario(tmp_path / "s.yaml", 20)
    before = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        reader = _reader.fork_reader(path)
        assert reader is not None
        kind, document = _reader.collect(reader)
        late = _reader.fork_reader(path)
        assert late is not None
        _reader.stop(late)
    finally:
        signal.signal(signal.SIGCHLD, before)
    assert kind == "document" and document["lots"][0]["doses"] == 5_000_000
