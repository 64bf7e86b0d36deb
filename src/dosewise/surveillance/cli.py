"""Commands: ``dosewise data pull who|owid`` and ``dosewise need``."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from dosewise.errors import InputError
from dosewise.surveillance.demo import DPRK_SITREPS
from dosewise.surveillance.need import need_from_feed
from dosewise.surveillance.pull import SOURCES, default_cache_dir, pull
from dosewise.surveillance.readers import (
    read_owid,
    read_sitreps,
    read_undp_deliveries,
    read_who_vaccination,
    read_who_weekly,
)

console = Console()
data_app = typer.Typer(help="Fetch surveillance files into the local cache.", no_args_is_help=True)


@data_app.command("pull")
def pull_command(
    source: Annotated[str, typer.Argument(help=f"one of: {', '.join(SOURCES)}")],
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="default: the user cache dir")] = None,
    url: Annotated[str | None, typer.Option("--url", help="download from this address instead")] = None,
) -> None:
    """Download the current file (conditional request, checksum recorded, atomic write)."""
    result = pull(source, cache_dir=cache_dir, url=url)
    console.print(result.message, highlight=False)


def participants_from_reference(codes: Sequence[str], year: int = 2020) -> pd.DataFrame:
    """Participants frame (population, share_65plus, income_level) from dosewise.reference:
    UN WPP 2024 population and the OCHA/World Bank income level. Codes WPP lacks get NaN
    population (flagged ``population_missing`` by the need score), never zero."""
    from dosewise.reference.countries import country_info
    from dosewise.reference.population import AGE_BANDS, population_by_age, wpp_coverage

    covered = wpp_coverage()
    have = [c for c in codes if c in covered]
    by_age = population_by_age(have, year)
    old = AGE_BANDS.index("65-69")
    frame = pd.DataFrame(index=pd.Index(list(codes), name="participant"))
    frame["name"] = [country_info(c).name for c in codes]
    total = pd.Series(by_age.sum(axis=1), index=have, dtype=float)
    frame["population"] = total.reindex(frame.index)
    frame["share_65plus"] = (pd.Series(by_age[:, old:].sum(axis=1), index=have, dtype=float) / total).reindex(
        frame.index
    )
    frame["income_level"] = [country_info(c).income_level for c in codes]
    return frame


def _read_vaccination(path: Path) -> pd.DataFrame:
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    return read_who_vaccination(path) if "ISO3" in header.split(",") else read_owid(path)


def _default_who() -> Path:
    path = default_cache_dir() / SOURCES["who"].filename
    if not path.exists():
        raise InputError(
            "no WHO weekly file: pass --who FILE or run `dosewise data pull who` first",
            field="--who",
            value=str(path),
        )
    return path


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
    out: Annotated[Path | None, typer.Option("--out", help="also write the full table (.csv)")] = None,
) -> None:
    """Rank participants by need as of a date, showing every component and flag."""
    if (scenario is None) == (group is None):
        raise InputError("give either a SCENARIO file or --group", field="--group")
    if scenario is not None:
        from dosewise.scenario import load_scenario
        from dosewise.world import build_world

        sc = load_scenario(scenario)
        participants = build_world(sc).participants
        when = as_of or (sc.as_of.isoformat() if sc.as_of else None)
    else:
        from dosewise.reference.groups import group_members

        participants = participants_from_reference(group_members(str(group)))
        when = as_of
    if when is None:
        raise InputError("no date: pass --as-of YYYY-MM-DD", field="--as-of")
    try:
        date = dt.date.fromisoformat(when)
    except ValueError as exc:
        raise InputError("not a date (YYYY-MM-DD)", field="--as-of", value=when) from exc

    weekly = read_who_weekly(who or _default_who())
    vax = _read_vaccination(vaccination) if vaccination is not None else None
    sitreps = read_sitreps(DPRK_SITREPS if sitrep == "demo" else Path(sitrep)) if sitrep else None
    supply = None
    if deliveries is not None:
        if deliveries_date is None:
            raise InputError(
                "the deliveries file has no date: pass --deliveries-date YYYY-MM-DD (its publication date)",
                file=str(deliveries),
                field="--deliveries-date",
            )
        supply = read_undp_deliveries(deliveries, as_of=deliveries_date)
    scores = need_from_feed(
        participants,
        weekly,
        as_of=date,
        vaccination=vax,
        sitreps=sitreps,
        deliveries=supply,
        no_report_weeks=no_report_weeks,
    ).sort_values("rank", kind="stable")
    if out is not None:
        scores.to_csv(out)

    week = scores["week"].iloc[0] if len(scores) else pd.Timestamp(date)
    table = Table(title=f"Need as of {date} (WHO week {week:%Y-%m-%d}); weights: Jain et al. 2022", show_lines=False)
    for col in (
        "rank",
        "participant",
        "need",
        "threat",
        "vuln.",
        "cover.",
        "deaths/100k 28d",
        "cases/100k 28d",
        "growth",
        "65+ %",
        "income",
        "gap to 70%",
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
            f"{code} {names.get(code, '')}",
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
            str(r["flags"]),
        )
    console.print(table)
    console.print(
        f"{len(scores)} participants; {int((scores['flags'] != '').sum())} carry flags; "
        "NaN threat (not zero) where a participant has no surveillance data.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("need")(need_command)
