"""The ``dosewise`` command line (Typer + Rich): parsing and printing only.

Every command calls :mod:`dosewise.app`; command modules import the domain (pandas, SQLAlchemy,
HiGHS) inside their functions, so ``dosewise --help`` stays fast. Errors a user can cause are
printed as one line, never as a traceback, with the exit codes decided here and only here: 2
for bad input or a state that forbids the command, 1 for a ledger that fails verification
(:class:`~dosewise.errors.IntegrityError`); secrets in database URLs are masked.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any

import typer
import typer.main
from rich.text import Text

from dosewise import __version__
from dosewise.cli import allocate, compare, data, demo, ledger, rounds, serve, sweep
from dosewise.cli._common import err_console
from dosewise.errors import DosewiseError, IntegrityError, mask_secrets

_SETTINGS: dict[str, Any] = {
    "name": "dosewise",
    "help": "Allocate scarce vaccine supply by a transparent policy, run offer rounds, and audit every dose.",
    "no_args_is_help": True,
    "pretty_exceptions_enable": False,
}
app = typer.Typer(**_SETTINGS)


def _version(value: bool) -> None:
    if value:
        print(f"dosewise {__version__}")
        raise typer.Exit()


startup_paused = False
"""Set by :func:`dosewise.cli.main` in the command's own process: the cyclic garbage collector is paused while
the command line is imported (a few hundred thousand objects made, none garbage) and resumed when the
command starts."""


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Allocate scarce vaccine supply by a transparent policy, run offer rounds, and audit every dose."""
    global startup_paused
    if startup_paused:  # imports done: what they made lives as long as the command, later collections skip it
        startup_paused = False
        gc.freeze()
        gc.enable()


for _module in (allocate, rounds, ledger, compare, sweep, data, demo, serve):
    _module.register(app)

def _plain_width() -> None:
    """Rich tables are 80 columns wide when output is not a terminal; give pipes and files room."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        os.environ["COLUMNS"] = "160"


def run(argv: list[str] | None = None) -> None:
    """Run the CLI (:func:`dosewise.cli.main` is the entry point); a user error prints one message and exits
    with code 2."""
    _plain_width()
    # At exit the interpreter runs one last full garbage collection over every object still alive
    # (about 0.2 s after a scenario of 100,000 units). The command is over by then and every file it
    # wrote is closed, so the objects are frozen first: that traversal is skipped (what reference
    # counting frees is freed as before). Only for the command's own process, not for importers.
    atexit.register(gc.freeze)
    args = sys.argv[1:] if argv is None else argv
    try:
        for_command(args)(args=args, prog_name="dosewise")
    except DosewiseError as exc:
        _fail(str(exc), 1 if isinstance(exc, IntegrityError) else 2)
    except OSError as exc:  # a file that cannot be read or written
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 2)
    except RecursionError:
        _fail("input nested too deeply", 2)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("sqlalchemy", "psycopg", "sqlite3", "alembic"):
            _fail(f"cannot use the ledger database: {getattr(exc, 'orig', None) or exc}", 2)
        raise


def for_command(args: list[str]) -> typer.Typer:
    """The app with only the command ``args`` starts with (``allocate``, ``round`` …) when it names one, else
    the whole app. Typer builds the parser of every command it holds on each run (signatures, type hints,
    one pydantic adapter per option: about 0.07 s for all of them); the one named is all a run can use.
    Help, errors and behaviour are the same: an unknown name, no command or a root option gets the whole app."""
    if not args or args[0].startswith("-"):
        return app
    commands = [c for c in app.registered_commands
                if (c.name or typer.main.get_command_name(getattr(c.callback, "__name__", ""))) == args[0]]
    groups = [g for g in app.registered_groups if g.name == args[0]]
    if len(commands) + len(groups) != 1:
        return app
    narrow = typer.Typer(**_SETTINGS)
    narrow.registered_callback = app.registered_callback
    narrow.registered_commands = commands
    narrow.registered_groups = groups
    return narrow


def _fail(message: str, code: int) -> None:
    err_console.print(Text.assemble(("error: ", "bold red"), mask_secrets(message)), highlight=False, soft_wrap=True)
    sys.exit(code)
