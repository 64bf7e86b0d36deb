"""The ``dosewise`` command line: parsing and printing over :mod:`dosewise.app`.

:func:`main` is the entry point. Before it imports the command line (Typer, Rich and the command
modules, :mod:`dosewise.cli.commands`) it lets :mod:`dosewise.cli._reader` start reading a large
scenario file named on the command line, so reading and importing run side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``dosewise`` command line on ``argv`` (default: the process's arguments)."""
    import gc
    import sys

    from dosewise.cli import _reader

    args = list(sys.argv[1:] if argv is None else argv)
    _reader.start_early(args)
    paused = argv is None and gc.isenabled()
    if paused:  # the command's own process: no collections while the command line is imported
        gc.disable()
    try:
        from dosewise.cli import commands

        commands.startup_paused = paused
        commands.run(None if argv is None else args)
    finally:
        _reader.discard_early()  # a child no command asked for (the command failed first)
        if paused:
            gc.enable()


def __getattr__(name: str) -> Any:  # PEP 562: the Typer app on first use, not on import
    if name == "app":
        from dosewise.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "main"]
