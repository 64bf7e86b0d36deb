"""A large scenario file read in a forked child process while the command starts.

``dosewise allocate`` on a scenario listing 100,000 units inline spends about as long reading the
file (the YAML, then every unit checked) as it spends importing what it needs to allocate (Typer,
pydantic, pandas, the policies): a few tenths of a second of work each, one core each. So the command
line looks at its arguments before it imports anything: when the scenario argument of a command in
:data:`READS` names a regular file of at least :data:`MIN_BYTES`, a child is forked at once to read it
(:func:`dosewise.yamlread.read_scenario_file`, which imports neither pydantic nor pandas) and send the
document back pickled, while this process imports and parses its arguments as usual.

The command then asks for the scenario by path (:func:`dosewise.cli._common.load_beside`). It takes the
child's answer only when the child read that path and the file is unchanged since (same device, inode,
size, modification and change times), and validates it as :func:`dosewise.scenario.load_scenario` does.
In every other case (another path, a changed file, a child that died or sent nothing readable) the
command reads the file itself; either way the scenario and every message are those of
:func:`dosewise.app.load`. A child no one asks for is killed when the command ends (:func:`discard_early`),
and the child dies with the command (Linux ``PR_SET_PDEATHSIG``).

Only on Linux (a fork is cheap and safe there before any thread starts), and only while this process
has one thread. Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_BYTES = 256 * 1024
"""Smaller files are read in place: forking and pickling would cost what they save (a scenario
written by hand is a few kilobytes; 100,000 inline units are about 5.7 MB)."""

READS: dict[str, frozenset[str]] = {
    "allocate": frozenset({"--policy", "--out", "--r0", "--days", "--prior-immunity", "--health-system",
                           "--priority"}),
}
"""Commands whose first positional argument is a scenario file, with their options that take a value
(the token after one is the option's value, not the scenario). Kept equal to the Typer commands by a test."""


@dataclass
class Reader:
    """A forked child reading ``path``: its process id and the read end of the pipe it answers on."""

    path: Path
    pid: int
    fd: int


_early: Reader | None = None


def scenario_argument(argv: list[str]) -> str | None:
    """The scenario argument of ``argv`` (the arguments after the program name) when its command is in
    :data:`READS`, else None; None too when help is asked for."""
    if not argv or argv[0] not in READS:
        return None
    takes_value = READS[argv[0]]
    rest = iter(argv[1:])
    for token in rest:
        if token == "--":
            return next(rest, None)
        if token in ("--help", "-h"):
            return None
        if token.startswith("-") and token != "-":
            if token in takes_value:
                next(rest, None)
            continue
        return token
    return None


def names_demo(path: Path) -> bool:
    """Whether :func:`dosewise.app.load` takes ``path`` for the built-in demo (``demo``, ``./demo``: the text
    of the path is ``demo``) rather than a file, whatever file of that name exists."""
    return str(path) == "demo"


def identity(path: Path) -> tuple[int, ...] | None:
    """What tells a file from its earlier or later self: device, inode, size, modification and change
    times (ns); None when ``path`` is not a regular file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def worth_reading_beside(path: Path) -> bool:
    """Whether ``path`` is read in a child: a regular file of at least :data:`MIN_BYTES` that does not name the
    demo, and a fork is cheap and safe here."""
    if names_demo(path):
        return False
    ident = identity(path)
    return ident is not None and ident[2] >= MIN_BYTES and can_fork()


def can_fork() -> bool:
    """A fork is cheap and safe: Linux, one thread."""
    if not sys.platform.startswith("linux"):
        return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def start_early(argv: list[str]) -> None:
    """Called first thing by the command line: fork a child to read the scenario ``argv`` names, if it
    is large enough to be worth it (see the module's description)."""
    global _early
    if _early is not None:
        return
    token = scenario_argument(argv)
    if token is not None and worth_reading_beside(Path(token)):
        _early = fork_reader(Path(token))


def take_early(path: Path) -> Reader | None:
    """The child started by :func:`start_early` when it reads ``path``; a child reading another path is
    stopped."""
    global _early
    reader, _early = _early, None
    if reader is None:
        return None
    if reader.path == path and not names_demo(path):
        return reader
    stop(reader)
    return None


def discard_early() -> None:
    """When the command is over: stop a child it did not ask for (it failed before reading, or read
    nothing). The child also dies with this process, whatever ends it."""
    global _early
    reader, _early = _early, None
    if reader is not None:
        stop(reader)


def stop(reader: Reader) -> None:
    """Kill and reap a reading child; close its pipe."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(reader.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(reader.pid, 0)
    with contextlib.suppress(OSError):
        os.close(reader.fd)


def fork_reader(path: Path) -> Reader | None:
    """Fork a child that reads the scenario at ``path`` and answers on a pipe; None if the fork fails."""
    read_end, write_end = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: read, answer, leave without running the parent's exit handlers
        code = 0
        try:
            os.close(read_end)
            _child(path, parent, write_end)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    return Reader(path, pid, read_end)


def _child(path: Path, parent: int, write_end: int) -> None:
    """Read the file into the document :func:`dosewise.yamlread.read_scenario_file` gives (no pydantic, no
    pandas to import: the command validates it, in a few milliseconds) and send it, or the refusal."""
    import gc
    import pickle

    _end_with(parent)
    gc.disable()  # a short life ending in os._exit: nothing to collect, no pauses on the way
    from dosewise.errors import DosewiseError
    from dosewise.yamlread import read_scenario_file

    before = identity(path)
    answer: tuple[str, object]
    try:
        answer = ("document", read_scenario_file(path))
    except DosewiseError as exc:
        answer = ("refused", exc)
    read = before if before is not None and identity(path) == before else None
    data = pickle.dumps((read, answer), protocol=pickle.HIGHEST_PROTOCOL)
    with os.fdopen(write_end, "wb") as out:
        out.write(data)


def collect(reader: Reader) -> tuple[str, Any]:
    """Wait for the child's answer: ``("document", what read_scenario_file gives)`` or ``("refused",
    DosewiseError)`` when it read the file as it still is, else ``("", None)`` (the caller reads the file
    itself)."""
    import pickle

    with os.fdopen(reader.fd, "rb") as pipe:
        data = pipe.read()
    try:
        _, status = os.waitpid(reader.pid, 0)
    except ChildProcessError:  # reaped already (SIGCHLD ignored): a whole answer unpickles, a cut one does not
        status = 0
    if os.waitstatus_to_exitcode(status) != 0:
        return "", None
    try:
        read, answer = pickle.loads(data)
    except Exception:  # an answer that does not unpickle
        return "", None
    if read is None or read != identity(reader.path):  # changed, replaced or moved since the child read it
        return "", None
    kind, value = answer
    return kind, value


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
