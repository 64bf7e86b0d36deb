"""Commands: ``dosewise data pull who|owid`` and ``dosewise need``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dosewise.cli._common import OutOption, check_out, console, parse_date, safe, write_rows
from dosewise.errors import DataSourceError, InputError

SOURCE_NAMES = ("who", "owid")
data_app = typer.Typer(help="Fetch surveillance files into the local cache.", no_args_is_help=True)


@data_app.command("pull")
def pull_command(
    source: Annotated[str, typer.Argument(help=f"one of: {', '.join(SOURCE_NAMES)}")],
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="default: the user cache dir")] = None,
    url: Annotated[str | None, typer.Option("--url", help="download from this address instead")] = None,
    from_file: Annotated[Path | None, typer.Option("--from", help="import a local copy of the file instead "
                                                                  "of downloading it")] = None,
) -> None:
    """Download the current file (conditional request, checksum recorded, atomic write), or import
    a local copy with --from FILE."""
    from dosewise.surveillance.pull import import_file, pull

    if from_file is not None and url is not None:
        raise InputError("give --url or --from, not both", field="--from", value=str(from_file))
    result = (import_file(source, from_file, cache_dir=cache_dir) if from_file is not None
              else pull(source, cache_dir=cache_dir, url=url))
    console.print(result.message, highlight=False)


def _default_who() -> Path:
    from dosewise.app import cached_who

    path = cached_who()
    if path is None:
        raise InputError("no WHO weekly file: pass --who FILE or run `dosewise data pull who` first", field="--who")
    return path


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An error about the WHO weekly file that does not name the file names it."""
    try:
        yield
    except DataSourceError as exc:
        if "weekly file" in str(exc) and str(path) not in str(exc) and path.name not in str(exc):
            raise DataSourceError(f"{path}: {exc}") from None
        raise


def _fmt(x: object, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, spec)


def need_command(
    scenario: Annotated[Path | None, typer.Argument(help="scenario YAML (participants)")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="date, YYYY-MM-DD (default: the scenario's)")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="a named group instead of a scenario, e.g. AMC92")
    ] = None,
    who: Annotated[Path | None, typer.Option("--who", help="WHO-COVID-19-global-data.csv")] = None,
    vaccination: Annotated[
        Path | None, typer.Option("--vaccination", help="WHO vaccination-data.csv or OWID vaccinations.csv")
    ] = None,
    sitrep: Annotated[
        str | None, typer.Option("--sitrep", help="situation-report CSV, or 'demo' for the DPRK records")
    ] = None,
    deliveries: Annotated[
        Path | None,
        typer.Option("--deliveries", help="UNDP vaccine-equity Data.csv (doses delivered; written to --out)"),
    ] = None,
    deliveries_date: Annotated[
        str | None,
        typer.Option("--deliveries-date", help="snapshot date of --deliveries, YYYY-MM-DD (the file has none)"),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="show the first N only")] = None,
    no_report_weeks: Annotated[int, typer.Option("--no-report-weeks", min=1)] = 4,
    out: OutOption = None,
) -> None:
    """Rank participants by need as of a date, showing every component and flag.

    Scores lie in [0, 1] (need, threat, vulnerability and the coverage score, which is high where
    coverage is low); the table shows 65+ in percent and the gap to 70% coverage in percentage
    points, pp (--out holds both as shares, 0-1); deaths and cases are per 100,000 people over the
    last 28 days. A participant with no surveillance data has no threat value (flag
    ``no_threat_data``), never a zero.
    """
    import numpy as np
    import pandas as pd

    from dosewise import app as api

    check_out(out)
    if (scenario is None) == (group is None):
        raise InputError("give either a SCENARIO file or --group", field="--group")
    if scenario is not None:
        from dosewise.world import build_world

        sc = api.load(scenario)
        participants = build_world(sc).participants
        date = parse_date(as_of, "--as-of") or sc.as_of
    else:
        participants = api.participants_for_group(str(group))
        date = parse_date(as_of, "--as-of")
    if date is None:
        raise InputError("no date: pass --as-of YYYY-MM-DD", field="--as-of")
    source = who or _default_who()
    with _naming(source):
        scores = api.need(participants, source, date, vaccination=vaccination, sitreps=sitrep,
                          deliveries=deliveries, deliveries_date=deliveries_date, no_report_weeks=no_report_weeks)
    for note in scores.attrs.get("notes", []):
        console.print(f"[yellow]{safe(note)}[/]")
    if out is not None:
        write_rows(scores, out, index=True)

    week = scores["week"].iloc[0] if len(scores) else pd.Timestamp(date)
    cached = "" if who is not None else " (cache)"
    table = Table(title=f"Need as of {date} (WHO week {week:%Y-%m-%d}) from {safe(source)}{cached}; "
                        "weights: Jain et al. 2022", show_lines=False)
    for col in (
        "rank",
        "participant",
        "need",
        "threat",
        "vuln.",
        "coverage score",
        "deaths/100k 28d",
        "cases/100k 28d",
        "growth",
        "65+ %",
        "income",
        "gap to 70% (pp)",
        "flags",
    ):
        table.add_column(col, justify="left" if col in ("participant", "income", "flags") else "right")
    names = (
        participants["name"]
        if "name" in participants.columns
        else pd.Series(participants.index, index=participants.index)
    )
    shown = scores if top is None else scores.head(top)
    for code, r in shown.iterrows():
        table.add_row(
            str(r["rank"]),
            f"{safe(code)} {safe(names.get(code, ''))}",
            _fmt(r["need"], ".3f"),
            _fmt(r["threat"], ".2f"),
            _fmt(r["vulnerability"], ".2f"),
            _fmt(r["coverage"], ".2f"),
            _fmt(r["deaths_per100k_28d"], ".2f"),
            _fmt(r["cases_per100k_28d"], ".1f"),
            _fmt(r["growth"], "+.2f"),
            _fmt(r["share_65plus"] * 100 if r["share_65plus"] == r["share_65plus"] else np.nan, ".1f"),
            str(r["income_level"] or "–"),
            _fmt(r["coverage_gap"] * 100 if r["coverage_gap"] == r["coverage_gap"] else np.nan, ".0f"),
            safe(r["flags"]),
        )
    console.print(table)
    if vaccination is not None and len(scores) and scores["coverage_gap"].isna().all():
        console.print(f"[yellow]{safe(vaccination)} contributed nothing: no participant has a vaccination "
                      f"figure on or before {date} in it (the coverage score is missing for all)[/]")
    console.print(
        f"{len(scores)} participants; {int((scores['flags'] != '').sum())} carry flags; "
        "NaN threat (not zero) where a participant has no surveillance data.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("need")(need_command)
