"""The ``dosewise`` command line (Typer + Rich).

Each area of the package adds its commands through a ``register(app)`` function
listed in :data:`_AREAS`; errors a user can cause are printed plainly with exit
code 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from dosewise.errors import DosewiseError

app = typer.Typer(
    name="dosewise",
    help="Allocate scarce vaccine supply by a transparent policy, run offer rounds, and audit every dose.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)

# Modules that define ``register(app: typer.Typer) -> None``; one line per area.
_AREAS: tuple[str, ...] = (
    "dosewise._cli_core",
    "dosewise.rounds_cli",
    "dosewise.ledger.cli",
    "dosewise.impact.cli",
    "dosewise.surveillance.cli",
)


def _build() -> typer.Typer:
    for name in _AREAS:
        importlib.import_module(name).register(app)
    return app


def _plain_width() -> None:
    """Rich tables are 80 columns wide when output is not a terminal; give pipes and files room."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        os.environ["COLUMNS"] = "160"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; a user error prints one message and exits with code 2.

    Typer runs in standalone mode, so usage errors (a missing argument, an unknown option or
    command) are reported by the command-line parser itself with exit code 2.
    """
    _plain_width()
    _build()
    try:
        app(args=argv, prog_name="dosewise")
    except DosewiseError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:  # a file that cannot be read or written
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", 2)
    except SQLAlchemyError as exc:
        _fail(f"cannot use the ledger database: {getattr(exc, 'orig', None) or exc}", 2)


def _fail(message: str, code: int) -> None:
    err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
    sys.exit(code)


if __name__ == "__main__":
    main()
