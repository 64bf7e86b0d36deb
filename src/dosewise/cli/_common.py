"""What every command shares: the consoles, safe rendering of text from other parties, the
``--out`` convention, the ``--db`` option and date parsing. Imports nothing heavy."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from dosewise.errors import DosewiseError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from dosewise.scenario import Scenario

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

OUT_FORMATS = (".csv", ".json", ".parquet")
"""Every command that lists rows writes them with ``--out FILE``, the format taken from the suffix."""

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Ledger: a SQLite file path or a sqlite:///… or postgresql://… URL "
                              "(default: $DOSEWISE_DB, else dosewise.db in the current folder).",
                 show_default=False),
]
OutOption = Annotated[
    Path | None,
    typer.Option("--out", help="Also write the rows to FILE: .csv, .json or .parquet (format from the suffix).",
                 show_default=False),
]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: object, *, limit: int = 500) -> str:
    """Text from another party, made safe to print: Rich markup escaped, control characters
    (ANSI escapes, bidi overrides) shown as ``\\xNN``, and cut at ``limit`` characters."""
    s = str(text)
    if len(s) > limit:
        s = s[:limit] + f"… ({len(s) - limit:,} more characters)"
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return escape(s)


def check_out(out: Path | None, formats: tuple[str, ...] = OUT_FORMATS) -> None:
    """Fail before any work if ``--out`` has an unknown suffix or its folder does not exist."""
    if out is None:
        return
    if out.suffix.lower() not in formats:
        raise InputError(f"output must end in {', '.join(formats)}", file=str(out), field="--out",
                         value=out.suffix or out.name)
    if not out.parent.is_dir():
        raise InputError("the output folder does not exist", file=str(out), field="--out", value=str(out.parent))


def write_rows(frame: pd.DataFrame, out: Path, *, index: bool = False) -> None:
    """Write rows in the format the suffix names (checked by :func:`check_out`)."""
    check_out(out)
    suffix = out.suffix.lower()
    data = frame.reset_index() if index else frame
    if suffix == ".csv":
        data.to_csv(out, index=False)
    elif suffix == ".json":
        data.to_json(out, orient="records", indent=1, date_format="iso")
    else:
        data.to_parquet(out, index=False)
    console.print(f"wrote {safe(out)} ({len(frame):,} rows)")


def parse_date(value: str | None, field: str) -> dt.date | None:
    """An ISO date (YYYY-MM-DD) from an option, or a clear error naming the option."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError("not an ISO date (YYYY-MM-DD)", field=field, value=value) from None


def load_beside(path: Path, *modules: str) -> Scenario:
    """The scenario at ``path``, read in a forked child process while this one imports ``modules``.

    A large scenario file (100,000 units listed inline) takes about half a second to read and check,
    and the command then needs libraries that take as long to import (pandas above all); both are
    work for one core each. On Linux (where a fork is what :mod:`multiprocessing` does by default),
    when the file is at least :data:`~dosewise.scenario.FAST_YAML_MIN_CHARS` long and no other thread
    runs, a child reads the file (:func:`dosewise.app.load`) and sends the scenario back pickled, while
    this process imports ``modules``; the child ends with this process if it is killed meanwhile. The
    child's refusal (bad input) is raised here as the command's own; anything else that goes wrong in
    the child (it dies, its answer does not unpickle) and every other case read the file here, so the
    result and every message are those of :func:`dosewise.app.load`.
    """
    import gc
    import importlib
    import threading

    from dosewise import app as api
    from dosewise.scenario import FAST_YAML_MIN_CHARS, Scenario

    try:
        large = path.stat().st_size >= FAST_YAML_MIN_CHARS
    except OSError:  # missing, unreadable: load says so
        large = False
    if not (large and sys.platform.startswith("linux") and threading.active_count() == 1):
        for name in modules:
            importlib.import_module(name)
        return api.load(path)
    import pickle

    read_end, write_end = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: read, answer, leave without running the parent's exit handlers
        code = 0
        try:
            _end_with(parent)
            gc.disable()  # a short life ending in os._exit: nothing to collect, no pauses on the way
            os.close(read_end)
            try:
                answer: tuple[str, object] = ("scenario", api.load(path))
            except DosewiseError as exc:
                answer = ("refused", exc)
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        for name in modules:
            importlib.import_module(name)
        gc.freeze()  # the modules live as long as the command: later collections need not walk them
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
    try:
        kind, value = pickle.loads(data) if os.waitstatus_to_exitcode(status) == 0 else ("", None)
    except Exception:  # an answer that does not unpickle: read the file here
        kind, value = "", None
    if kind == "refused" and isinstance(value, DosewiseError):
        raise value
    if kind == "scenario" and isinstance(value, Scenario):
        return value
    return api.load(path)


def _end_with(parent: int) -> None:
    """In a forked child: be killed when ``parent`` ends (Linux ``PR_SET_PDEATHSIG``), so a command
    killed while its child reads leaves no process behind; leave at once if it has already ended."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl here: the child ends when it next writes to the pipe
        pass
    if os.getppid() != parent:
        os._exit(1)
