"""``dosewise compare``: deaths averted by several policies on one scenario."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from dosewise.errors import InputError
from dosewise.impact.compare import (
    DEFAULT_POLICIES,
    comparison_table,
    doses_per_100_frame,
    plot_comparison,
    run_policies,
)
from dosewise.impact.parameters import HEALTH_SYSTEMS, IFR_SOURCES
from dosewise.scenario import Scenario, load_demo, load_scenario

console = Console()


def like_from_scenario(sc: Scenario) -> dict[str, str]:
    """Participants' ``age_structure_like`` (and units' parents): the stand-ins for contact matrices."""
    p = sc.participants
    out = {u.id: str(u.age_structure_like or u.parent).upper() for u in p.units if u.age_structure_like or u.parent}
    for code, prof in p.overrides.items():
        if prof.age_structure_like:
            out[code.upper()] = prof.age_structure_like.upper()
    return out


def comparison_rich_table(frame: pd.DataFrame, title: str) -> Table:
    """The comparison frame as a Rich table (kept apart from printing so callers can add columns).

    The "not used" column appears only when some policy leaves doses unused.
    """
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
        table.add_row(str(name), *cells)
    return table


def need_options(
    world: Any, sc: Scenario, who: Path | None, as_of: dt.date | None
) -> tuple[dict[str, float] | None, str]:
    """Need scores for ``covax-need-weighted`` and a line saying where they came from (or why none).

    From ``--who`` (WHO weekly CSV) as of ``--as-of`` (default: the scenario's ``as_of``, else
    the first lot's availability); without ``--who``, the file ``dosewise data pull who`` caches.
    A scenario whose policy options already carry ``need`` or ``who`` needs neither.
    """
    opts = sc.policy.options
    if who is None and ("need" in opts or ("who" in opts and "as_of" in opts)):
        return None, "need scores: from the scenario's policy options"
    source = "--who"
    if who is None:
        from dosewise.surveillance.pull import SOURCES, default_cache_dir

        cached = default_cache_dir() / SOURCES["who"].filename
        if not cached.exists():
            return None, ""
        who, source = cached, "the cached WHO file"
    day = as_of or sc.as_of or min(lot.available for lot in sc.lots)
    from dosewise.policies.need_weighted import need_from_files

    return need_from_files(world, str(who), day), f"need scores as of {day} from {source} ({who})"


def epidemic_overrides(
    *,
    r0: float | None = None,
    days: int | None = None,
    prior_immunity: float | None = None,
    ifr: str | None = None,
    health_system: str | None = None,
    priority: str | None = None,
    max_uptake: float | None = None,
    rollout_days: int | None = None,
    daily_doses_per_100: float | None = None,
) -> dict[str, Any]:
    """Command-line flags that override the scenario's ``epidemic:`` section (None: not given)."""
    return {"r0": r0, "days": days, "prior_immunity": prior_immunity, "ifr": ifr, "health_system": health_system,
            "priority": priority, "max_uptake": max_uptake, "rollout_days": rollout_days,
            "daily_doses_per_100": daily_doses_per_100}


R0_HELP = "Basic reproduction number (overrides the scenario's epidemic.r0)."
DAYS_HELP = "Horizon in days, 1-3650 (overrides epidemic.days)."


def income_table(runs: Any) -> pd.DataFrame:
    """Deaths without vaccine per million, and deaths averted by each policy, by World Bank income group."""
    first = next(iter(runs.results.values()))
    per = first.by_participant
    income = runs.world.participants["income_level"].reindex(per.index).fillna("(no income level)")
    frame = pd.DataFrame({"population": per["population"], "deaths_no_vaccine": per["deaths_no_vaccine"]})
    for name, res in runs.results.items():
        frame[name] = res.by_participant["deaths_averted"]
    grouped = frame.groupby(income.to_numpy()).sum()
    order = [g for g in ("High", "Upper middle", "Lower middle", "Low") if g in grouped.index]
    grouped = grouped.loc[order + [g for g in grouped.index if g not in order]]
    grouped.insert(2, "deaths_no_vaccine_per_million", 1e6 * grouped["deaths_no_vaccine"] / grouped["population"])
    grouped.index.name = "income_level"
    return grouped


def income_rich_table(frame: pd.DataFrame) -> Table:
    table = Table(title="by World Bank income group", box=box.SIMPLE_HEAD)
    table.add_column("income group", no_wrap=True)
    table.add_column("population", justify="right")
    table.add_column("deaths w/o vaccine per M", justify="right")
    fixed = ("population", "deaths_no_vaccine", "deaths_no_vaccine_per_million")
    policies = [c for c in frame.columns if c not in fixed]
    for name in policies:
        table.add_column(f"averted: {name}", justify="right")
    for group, row in frame.iterrows():
        table.add_row(str(group), f"{row['population'] / 1e6:,.0f}M", f"{row['deaths_no_vaccine_per_million']:,.0f}",
                      *(f"{row[p]:,.0f}" for p in policies))
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML file (or --demo).")] = None,
        policies: Annotated[
            str | None,
            typer.Option(help=f"Comma-separated policy names [default: {', '.join(DEFAULT_POLICIES)}]."),
        ] = None,
        days: Annotated[int | None, typer.Option(help=DAYS_HELP)] = None,
        r0: Annotated[float | None, typer.Option(help=R0_HELP)] = None,
        prior_immunity: Annotated[float | None, typer.Option(help="Share immune at the start, [0, 1).")] = None,
        ifr: Annotated[str | None, typer.Option(help=f"IFR source: {', '.join(IFR_SOURCES)}.")] = None,
        health_system: Annotated[
            str | None, typer.Option(help="IFR adjustment by income group: levin2022 or none.")] = None,
        priority: Annotated[str | None, typer.Option(help="oldest-first or pro-rata.")] = None,
        max_uptake: Annotated[float | None, typer.Option(help="Largest share of each age band vaccinated.")] = None,
        rollout_days: Annotated[int | None, typer.Option(help="Give each participant's doses over this many days.")
                                ] = None,
        daily_doses_per_100: Annotated[float | None, typer.Option(help="Doses per day per 100 people.")] = None,
        plot: Annotated[Path | None, typer.Option(help="Save a bar chart (.png or .svg).")] = None,
        out: Annotated[Path | None, typer.Option(help="Write the table (.csv or .json).")] = None,
        demo: Annotated[bool, typer.Option("--demo", help="Use the built-in demo scenario.")] = False,
        who: Annotated[
            Path | None, typer.Option(help="WHO weekly cases/deaths CSV: need scores for covax-need-weighted.")
        ] = None,
        as_of: Annotated[
            str | None, typer.Option(help="Date of the need scores (default: scenario as_of or first lot).")
        ] = None,
    ) -> None:
        """Run each policy on the same scenario and print the deaths it averts (SEIR-V impact model)."""
        from dosewise.epidemic import impact_setting, with_overrides
        from dosewise.world import build_world

        if demo == (scenario is not None):
            raise InputError("give a scenario file or --demo (not both)", field="scenario")
        if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
            raise InputError("plot must end in .png or .svg", file=str(plot), field="--plot", value=plot.suffix)
        if out is not None and out.suffix.lower() not in (".csv", ".json"):
            raise InputError("output must end in .csv or .json", file=str(out), field="--out", value=out.suffix)
        sc = load_demo() if scenario is None else load_scenario(scenario)
        settings = with_overrides(
            sc.epidemic,
            epidemic_overrides(r0=r0, days=days, prior_immunity=prior_immunity, ifr=ifr, health_system=health_system,
                               priority=priority, max_uptake=max_uptake, rollout_days=rollout_days,
                               daily_doses_per_100=daily_doses_per_100),
            file=None if scenario is None else str(scenario),
        )
        from dosewise.policies import POLICIES

        day = None
        if as_of is not None:
            try:
                day = dt.date.fromisoformat(as_of)
            except ValueError:
                raise InputError("must be a date YYYY-MM-DD", field="--as-of", value=as_of) from None
        world = build_world(sc)
        world.meta["epidemic"] = settings
        params, start = impact_setting(world, settings)
        if policies is None:
            names = [p for p in DEFAULT_POLICIES if p in POLICIES]
        else:
            names = [p.strip() for p in policies.split(",") if p.strip()]
        extra: dict[str, dict[str, Any]] = {}
        if "covax-need-weighted" in names:
            need, where = need_options(world, sc, who, day)
            if need is not None:
                extra["covax-need-weighted"] = {"need": need}
            if where:
                console.print(f"[dim]{where}[/]")
            elif policies is None:
                names.remove("covax-need-weighted")
                console.print("[yellow]covax-need-weighted left out: it needs need scores "
                              "(pass --who FILE, or run `dosewise data pull who`)[/]")
        runs = run_policies(
            world, names, params, policy_params=sc.policy, like=like_from_scenario(sc), policy_options=extra,
            start=start,
        )
        frame = comparison_table(runs)
        console.print(comparison_rich_table(frame, f"{sc.name}\ndeaths averted: {settings.describe()}"))
        by_income = income_table(runs)
        console.print(income_rich_table(by_income))
        first = next(iter(runs.results.values()))
        proxies = first.setup.notes
        if proxies:
            console.print("[yellow]contact-matrix proxies:[/] " + ", ".join(f"{c} ← {s}" for c, s in proxies.items()))
        if (frame["doses_unused"] + frame["doses_wasted"] + frame["doses_after_horizon"] >= 0.5).any():
            console.print("[dim]* not used = no eligible people left + expired in stock + still in stock "
                          "at the horizon[/]")
        console.print("[dim]† participants getting less than their covax-pro-rata doses (beyond one shipping unit); "
                      "‡ Gini of doses per capita across people (0 = equal)[/]")
        opt = [n for n in names if n.startswith("optimal")]
        if opt:
            notes = runs.allocations[opt[0]].notes
            console.print("[dim]§ optimal: the LP's own estimate of deaths averted (value curves simulated by this "
                          "run's impact model, re-linearised) minus the simulated figure, as a share of it[/]")
            if "optimal" in names:
                n0 = runs.allocations["optimal"].notes
                console.print(f"[dim]optimal: {n0.get('iterations', '?')} re-linearisations, "
                              f"{n0.get('engine_runs', '?')} stacked engine runs, answer from "
                              f"{n0.get('chosen', 'lp')}[/]")
            del notes
        console.print(f"[dim]IFR: {IFR_SOURCES[settings.ifr]}; health system: {HEALTH_SYSTEMS[settings.health_system]};"
                      " contacts: Prem et al. 2021/2017; population: UN WPP 2024[/]")
        if out is not None:
            suffix = out.suffix.lower()
            if suffix == ".csv":
                frame.to_csv(out)
            else:
                frame.reset_index().to_json(out, orient="records", indent=1)
            console.print(f"wrote {out}")
        if plot is not None:
            plot_comparison(frame, plot, title=f"{sc.name} ({settings.describe()})",
                            doses_per_100=doses_per_100_frame(runs))
            console.print(f"wrote {plot}")
