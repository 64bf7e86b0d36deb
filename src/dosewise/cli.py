"""The ``dosewise`` command line (Typer + Rich).

Each area of the package adds its commands through a ``register(app)`` function
listed in :data:`_AREAS`; errors a user can cause are printed plainly with exit
code 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.text import Text

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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into a message and exit code 2."""
    _build()
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except DosewiseError as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click usage errors come through as ClickException
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
