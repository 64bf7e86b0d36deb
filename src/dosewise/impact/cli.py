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
from dosewise.impact.compare import DEFAULT_POLICIES, comparison_table, plot_comparison, run_policies
from dosewise.impact.parameters import IFR_SOURCES, ImpactParams
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


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML file (or --demo).")] = None,
        policies: Annotated[
            str | None,
            typer.Option(help=f"Comma-separated policy names [default: {', '.join(DEFAULT_POLICIES)}]."),
        ] = None,
        days: Annotated[int, typer.Option(help="Horizon in days.")] = 365,
        r0: Annotated[float, typer.Option(help="Basic reproduction number, every participant.")] = 2.5,
        ifr: Annotated[str, typer.Option(help=f"IFR source: {', '.join(IFR_SOURCES)}.")] = "odriscoll2021",
        priority: Annotated[str, typer.Option(help="oldest-first or pro-rata.")] = "oldest-first",
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
        from dosewise.world import build_world

        if demo == (scenario is not None):
            raise InputError("give a scenario file or --demo (not both)", field="scenario")
        sc = load_demo() if scenario is None else load_scenario(scenario)
        from dosewise.policies import POLICIES

        day = None
        if as_of is not None:
            try:
                day = dt.date.fromisoformat(as_of)
            except ValueError:
                raise InputError("must be a date YYYY-MM-DD", field="--as-of", value=as_of) from None
        if priority not in ("oldest-first", "pro-rata"):
            raise InputError("priority must be oldest-first or pro-rata", field="--priority", value=priority)
        if ifr not in IFR_SOURCES:
            raise InputError(f"unknown IFR source; known: {', '.join(IFR_SOURCES)}", field="--ifr", value=ifr)
        params = ImpactParams(days=days, r0=r0, ifr_source=ifr, priority=priority)  # type: ignore[arg-type]
        world = build_world(sc)
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
            world, names, params, policy_params=sc.policy, like=like_from_scenario(sc), policy_options=extra
        )
        frame = comparison_table(runs)
        console.print(comparison_rich_table(frame, f"{sc.name}\ndeaths averted over {days} days, R0 {r0}"))
        first = next(iter(runs.results.values()))
        proxies = first.setup.notes
        if proxies:
            console.print("[yellow]contact-matrix proxies:[/] " + ", ".join(f"{c} ← {s}" for c, s in proxies.items()))
        if (frame["doses_unused"] + frame["doses_wasted"] + frame["doses_after_horizon"] >= 0.5).any():
            console.print("[dim]* not used = no eligible people left + expired in stock + still in stock "
                          "at the horizon[/]")
        console.print("[dim]† participants getting less than their covax-pro-rata doses (beyond one shipping unit); "
                      "‡ Gini of doses per capita across people (0 = equal)[/]")
        if runs.tier_values is not None:
            console.print("[dim]§ optimal: the LP's own estimate of deaths averted (linear in doses, tier values "
                          "from this run's impact parameters) minus the simulated figure, as a share of it[/]")
        console.print(f"[dim]IFR: {IFR_SOURCES[ifr]}; contacts: Prem et al. 2021/2017; population: UN WPP 2024[/]")
        if out is not None:
            suffix = out.suffix.lower()
            if suffix == ".csv":
                frame.to_csv(out)
            elif suffix == ".json":
                frame.reset_index().to_json(out, orient="records", indent=1)
            else:
                raise InputError("output must end in .csv or .json", file=str(out), field="--out", value=suffix)
            console.print(f"wrote {out}")
        if plot is not None:
            plot_comparison(frame, plot, title=f"{sc.name} (R0 {r0}, {days} days)")
            console.print(f"wrote {plot}")
