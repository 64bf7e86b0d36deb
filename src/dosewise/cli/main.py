"""The ``dosewise`` command line (Typer + Rich): parsing and printing only.

Every command calls :mod:`dosewise.app`; command modules import the domain (pandas, SQLAlchemy,
HiGHS) inside their functions, so ``dosewise --help`` stays fast. Errors a user can cause are
printed as one line with exit code 2 (1 for a ledger that fails verification), never as a
traceback; secrets in database URLs are masked.
"""

from __future__ import annotations

import os
import re
import sys

import typer
from rich.text import Text

from dosewise import __version__
from dosewise.cli import allocate, compare, data, demo, ledger, rounds
from dosewise.cli._common import err_console
from dosewise.errors import DosewiseError

app = typer.Typer(
    name="dosewise",
    help="Allocate scarce vaccine supply by a transparent policy, run offer rounds, and audit every dose.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"dosewise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Allocate scarce vaccine supply by a transparent policy, run offer rounds, and audit every dose."""


for _module in (allocate, rounds, ledger, compare, data, demo):
    _module.register(app)

_SECRET = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@/\s]+)@", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host`` (database URLs in messages)."""
    return _SECRET.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def _plain_width() -> None:
    """Rich tables are 80 columns wide when output is not a terminal; give pipes and files room."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        os.environ["COLUMNS"] = "160"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; a user error prints one message and exits with code 2."""
    _plain_width()
    try:
        app(args=argv, prog_name="dosewise")
    except DosewiseError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:  # a file that cannot be read or written
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 2)
    except RecursionError:
        _fail("input nested too deeply", 2)
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("sqlalchemy", "psycopg", "sqlite3", "alembic"):
            _fail(f"cannot use the ledger database: {getattr(exc, 'orig', None) or exc}", 2)
        raise


def _fail(message: str, code: int) -> None:
    err_console.print(Text.assemble(("error: ", "bold red"), mask_secrets(message)), highlight=False)
    sys.exit(code)
