"""What every command shares: the consoles, safe rendering of text from other parties, the
``--out`` convention, the ``--db`` option and date parsing. Imports nothing heavy."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from dosewise.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

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


def preload(*modules: str) -> None:
    """Import ``modules`` on a background thread while the command goes on (reading its input).

    A command that reads a large scenario spends part of that time in code that lets other threads
    run (the Rust YAML reader, file reads); the modules it needs next (pandas above all) are then
    imported on the other core meanwhile. Importing a module the thread is still importing simply
    waits for it (the import system locks each module), and an import that fails here fails again,
    with its message, where the command imports it itself. The thread is not a daemon: a command
    that ends early (bad input) waits for it instead of tearing down the interpreter mid-import.
    """
    import importlib
    import threading

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # reported by the command's own import
                return

    threading.Thread(target=load, name="dosewise-preload").start()

