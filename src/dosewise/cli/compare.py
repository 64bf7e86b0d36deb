"""``dosewise compare``: deaths averted by several policies on one scenario."""

from __future__ import annotations

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


def income_rich_table(frame: pd.DataFrame) -> Table:
    """Deaths without vaccine per million and each policy's deaths averted, by income group."""
    table = Table(title="by World Bank income group", box=box.SIMPLE_HEAD)
    table.add_column("income group", no_wrap=True)
    table.add_column("population", justify="right")
    table.add_column("deaths w/o vaccine per M", justify="right")
    fixed = ("population", "deaths_no_vaccine", "deaths_no_vaccine_per_million")
    policies = [c for c in frame.columns if c not in fixed]
    for name in policies:
        table.add_column(f"averted: {safe(name)}", justify="right")
    for group, row in frame.iterrows():
        table.add_row(safe(group), f"{row['population'] / 1e6:,.0f}M", f"{row['deaths_no_vaccine_per_million']:,.0f}",
                      *(f"{row[p]:,.0f}" for p in policies))
    return table


def compare(
    scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML file (or --demo, or --round).")] = None,
    policies: Annotated[
        str | None,
        typer.Option(help="Comma-separated policy names [default: covax-pro-rata, covax-need-weighted, optimal, "
                          "optimal-floor-50, optimal-floor-100]."),
    ] = None,
    days: Annotated[int | None, typer.Option(help="Horizon in days, 1 to 3,650 (overrides epidemic.days).")] = None,
    r0: Annotated[float | None, typer.Option(help="Basic reproduction number (overrides epidemic.r0).")] = None,
    prior_immunity: Annotated[float | None, typer.Option(help="Share immune at the start, [0, 1).")] = None,
    ifr: Annotated[str | None, typer.Option(help="IFR source: odriscoll2021, brazeau2020, levin2020.")] = None,
    health_system: Annotated[
        str | None, typer.Option(help="IFR by income group: levin2022 (x2 below high income) or none.")] = None,
    priority: Annotated[str | None, typer.Option(help="oldest-first or pro-rata.")] = None,
    max_uptake: Annotated[float | None, typer.Option(help="Largest share of each age band vaccinated.")] = None,
    rollout_days: Annotated[int | None, typer.Option(help="Give each participant's doses over this many days.")
                            ] = None,
    daily_doses_per_100: Annotated[float | None, typer.Option(help="Doses a day per 100 people.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Save a chart (.png, .svg or .pdf).")] = None,
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

    The epidemic is the scenario's ``epidemic:`` section; the flags override it. With --round,
    the round's first offers and what participants hold now (after declines and reallocation)
    are valued too, on the scenario the round was opened with.
    """
    from dosewise import app as api
    from dosewise.epidemic import with_overrides
    from dosewise.impact.parameters import HEALTH_SYSTEMS, IFR_SOURCES

    check_out(out)
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError("plot must end in .png, .svg or .pdf", file=str(plot), field="--plot", value=plot.suffix)
    if plot is not None and not plot.parent.is_dir():
        raise InputError("the plot folder does not exist", file=str(plot), field="--plot", value=str(plot.parent))
    if sum([demo, scenario is not None, round_id is not None]) != 1:
        raise InputError("give one of: a scenario file, --demo, or --round ID", field="scenario")
    day = parse_date(as_of, "--as-of")
    overrides = {"r0": r0, "days": days, "prior_immunity": prior_immunity, "ifr": ifr,
                 "health_system": health_system, "priority": priority, "max_uptake": max_uptake,
                 "rollout_days": rollout_days, "daily_doses_per_100": daily_doses_per_100}
    with_overrides(None, overrides)  # a bad flag fails before any file is read
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
    settings = with_overrides(sc.epidemic, overrides, file=None if scenario is None else str(scenario))
    result = api.compare(sc, policies=names, who=who, as_of=day, allocations=extra, epidemic=settings)
    for note in result.notes:
        console.print(f"[dim]{safe(note)}[/]")
    frame = result.frame
    console.print(comparison_rich_table(frame, f"{safe(sc.name)}\ndeaths averted: {safe(settings.describe())}"))
    from dosewise.compare import doses_per_100_frame, income_table

    console.print(income_rich_table(income_table(result.runs)))
    first = next(iter(result.runs.results.values()))
    proxies = first.setup.notes
    if proxies:
        console.print("[yellow]contact-matrix proxies:[/] " + ", ".join(f"{c} ← {s}" for c, s in proxies.items()))
    if (frame["doses_unused"] + frame["doses_wasted"] + frame["doses_after_horizon"] >= 0.5).any():
        console.print("[dim]* not used = no eligible people left + expired in stock + still in stock "
                      "at the horizon[/]")
    console.print("[dim]† participants getting less than their covax-pro-rata doses (beyond one shipping unit); "
                  "‡ Gini of doses per capita across people (0 = equal)[/]")
    allocs = result.runs.allocations
    if any(str(n).startswith("optimal") for n in allocs):
        console.print("[dim]§ optimal: the LP's own estimate of deaths averted (value curves simulated by this "
                      "run's impact model, re-linearised) minus the simulated figure, as a share of it[/]")
        if "optimal" in allocs:
            n0 = allocs["optimal"].notes
            chosen = safe(n0.get("chosen", "lp"))
            console.print(f"[dim]optimal: {n0.get('lp_solves', '?')} LP solves, {n0.get('iterations', '?')} "
                          f"steps simulated from {safe(n0.get('start', '?'))}, {n0.get('engine_runs', '?')} stacked "
                          f"engine runs; answer from {chosen}[/]")
    from dosewise.cli.allocate import population_sources

    populations = population_sources(result.runs.world.participants)
    console.print(f"[dim]IFR: {IFR_SOURCES[settings.ifr]}; health system: {HEALTH_SYSTEMS[settings.health_system]}; "
                  f"contacts: Prem et al. 2021/2017; population: {safe(populations)}[/]")
    if out is not None:
        write_rows(frame, out, index=True)
    if plot is not None:
        from dosewise.compare import plot_comparison

        plot_comparison(frame, plot, title=f"{sc.name} ({settings.describe()})",
                        doses_per_100=doses_per_100_frame(result.runs))
        console.print(f"wrote {safe(plot)}")


def register(app: typer.Typer) -> None:
    app.command()(compare)
