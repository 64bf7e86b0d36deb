"""``dosewise compare``: deaths averted by several policies on one scenario."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from dosewise.cli._common import DbOption, OutOption, check_out, console, parse_date, safe, write_rows
from dosewise.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


def comparison_rich_table(frame: pd.DataFrame, title: str) -> Table:
    """The comparison frame as a Rich table (kept apart from printing so callers can add columns).

    The "not used" column appears only when some policy leaves doses unused.
    """
    import numpy as np

    base = float(frame["deaths_no_vaccine"].iloc[0]) if len(frame) else float("nan")
    not_used = frame["doses_unused"] + frame["doses_wasted"] + frame["doses_after_horizon"]
    show_unused = bool((not_used >= 0.5).any())
    caption = f"deaths without vaccine: {base:,.0f}" + ("" if show_unused else "; every dose used within the horizon")
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD)
    table.add_column("policy", no_wrap=True)
    labels = ["deaths averted", "/100 doses", "below pro rata†", "Gini‡", "LP gap§"]
    if show_unused:
        labels.insert(2, "not used*")
    for label in labels:
        table.add_column(label, justify="right", min_width=9 if label == "deaths averted" else None)
    for pos, (name, row) in enumerate(frame.iterrows()):
        gap = float(row.get("lp_gap_share", float("nan")))
        cells = [
            f"{float(row['deaths_averted']):,.0f}",
            f"{float(row['deaths_averted_per_100_doses']):.3f}",
            f"{float(row['share_below_pro_rata']):.0%}" if "share_below_pro_rata" in row else "-",
            f"{float(row['gini_doses_per_capita']):.3f}" if "gini_doses_per_capita" in row else "-",
            f"{gap:+.1%}" if np.isfinite(gap) else "-",
        ]
        if show_unused:
            cells.insert(2, f"{float(not_used.iloc[pos]) / 1e6:,.2f}M")
        table.add_row(safe(name), *cells)
    return table


def compare(
    scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML file (or --demo, or --round).")] = None,
    policies: Annotated[
        str | None,
        typer.Option(help="Comma-separated policy names [default: covax-pro-rata, covax-need-weighted, optimal, "
                          "optimal-floor-50, optimal-floor-100]."),
    ] = None,
    days: Annotated[int, typer.Option(help="Horizon in days (1 to 3,650).")] = 365,
    r0: Annotated[float, typer.Option(help="Basic reproduction number, every participant (0 to 20).")] = 2.5,
    ifr: Annotated[str, typer.Option(help="IFR source: odriscoll2021, brazeau2020, levin2020.")] = "odriscoll2021",
    priority: Annotated[str, typer.Option(help="oldest-first or pro-rata.")] = "oldest-first",
    plot: Annotated[Path | None, typer.Option(help="Save a bar chart (.png or .svg).")] = None,
    out: OutOption = None,
    demo: Annotated[bool, typer.Option("--demo", help="Use the built-in demo scenario.")] = False,
    who: Annotated[
        Path | None, typer.Option(help="WHO weekly cases/deaths CSV: need scores for covax-need-weighted.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Date of the need scores (default: scenario as_of or first lot).")
    ] = None,
    round_id: Annotated[str | None, typer.Option("--round", help="Value a round's offers and holdings "
                                                                 "(from --db) beside the policies.")] = None,
    db: DbOption = None,
) -> None:
    """Run each policy on the same scenario and print the deaths it averts (SEIR-V impact model).

    With --round, the round's first offers and what participants hold now (after declines and
    reallocation) are valued too, on the scenario the round was opened with.
    """
    from dosewise import app as api
    from dosewise.impact.parameters import IFR_SOURCES, ImpactParams

    check_out(out)
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError("plot must end in .png, .svg or .pdf", file=str(plot), field="--plot", value=plot.suffix)
    if plot is not None and not plot.parent.is_dir():
        raise InputError("the plot folder does not exist", file=str(plot), field="--plot", value=str(plot.parent))
    if sum([demo, scenario is not None, round_id is not None]) != 1:
        raise InputError("give one of: a scenario file, --demo, or --round ID", field="scenario")
    if not (math.isfinite(r0) and 0 < r0 <= 20):
        raise InputError("must be a number above 0 and at most 20", field="--r0", value=r0)
    if not 1 <= days <= 3650:
        raise InputError("must be between 1 and 3,650 days", field="--days", value=days)
    if priority not in ("oldest-first", "pro-rata"):
        raise InputError("priority must be oldest-first or pro-rata", field="--priority", value=priority)
    if ifr not in IFR_SOURCES:
        raise InputError(f"unknown IFR source; known: {', '.join(IFR_SOURCES)}", field="--ifr", value=ifr)
    day = parse_date(as_of, "--as-of")
    params = ImpactParams(days=days, r0=r0, ifr_source=ifr, priority=priority)  # type: ignore[arg-type]
    names = None if policies is None else [p.strip() for p in policies.split(",") if p.strip()]
    extra = {}
    if round_id is not None:
        with api.Desk.open(db) as desk:
            offered = desk.offered_allocation(round_id)
            held = desk.round_allocation(round_id)
        sc = held.scenario
        extra = {f"round {round_id}: as first offered": offered.allocation,
                 f"round {round_id}: held now": held.allocation}
        if names is None:
            names = []
    else:
        sc = api.load("demo" if demo else scenario)  # type: ignore[arg-type]
    result = api.compare(sc, policies=names, params=params, who=who, as_of=day, allocations=extra)
    for note in result.notes:
        console.print(f"[dim]{safe(note)}[/]")
    frame = result.frame
    console.print(comparison_rich_table(frame, f"{safe(sc.name)}\ndeaths averted over {days} days, R0 {r0}"))
    first = next(iter(result.runs.results.values()))
    proxies = first.setup.notes
    if proxies:
        console.print("[yellow]contact-matrix proxies:[/] " + ", ".join(f"{c} ← {s}" for c, s in proxies.items()))
    if (frame["doses_unused"] + frame["doses_wasted"] + frame["doses_after_horizon"] >= 0.5).any():
        console.print("[dim]* not used = no eligible people left + expired in stock + still in stock "
                      "at the horizon[/]")
    console.print("[dim]† participants getting less than their covax-pro-rata doses (beyond one shipping unit); "
                  "‡ Gini of doses per capita across people (0 = equal)[/]")
    if result.runs.tier_values is not None:
        console.print("[dim]§ optimal: the LP's own estimate of deaths averted (linear in doses, tier values "
                      "from this run's impact parameters) minus the simulated figure, as a share of it[/]")
    console.print(f"[dim]IFR: {IFR_SOURCES[ifr]}; contacts: Prem et al. 2021/2017; population: UN WPP 2024[/]")
    if out is not None:
        write_rows(frame, out, index=True)
    if plot is not None:
        from dosewise.compare import plot_comparison

        plot_comparison(frame, plot, title=f"{sc.name} (R0 {r0}, {days} days)")
        console.print(f"wrote {safe(plot)}")


def register(app: typer.Typer) -> None:
    app.command()(compare)
