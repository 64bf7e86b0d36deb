"""``dosewise compare``: deaths averted by several policies on one scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from dosewise.errors import InputError
from dosewise.impact.compare import comparison_table, plot_comparison, run_policies
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
    """The comparison frame as a Rich table (kept apart from printing so callers can add columns)."""
    base = float(frame["deaths_no_vaccine"].iloc[0]) if len(frame) else float("nan")
    table = Table(title=title, caption=f"deaths without vaccine: {base:,.0f}")
    table.add_column("policy", no_wrap=True)
    for label in ("deaths averted", "/100 doses", "/1M people", "doses used", "not used*"):
        table.add_column(label, justify="right")
    for name, row in frame.iterrows():
        not_used = float(row["doses_unused"]) + float(row["doses_wasted"]) + float(row["doses_after_horizon"])
        table.add_row(
            str(name),
            f"{float(row['deaths_averted']):,.0f}",
            f"{float(row['deaths_averted_per_100_doses']):.3f}",
            f"{float(row['deaths_averted_per_million']):,.1f}",
            f"{float(row['doses_administered']) / 1e6:,.2f} M",
            f"{not_used / 1e6:,.2f} M",
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        scenario: Annotated[Path | None, typer.Argument(help="Scenario YAML file (or --demo).")] = None,
        policies: Annotated[str, typer.Option(help="Comma-separated policy names.")] = "covax-pro-rata",
        days: Annotated[int, typer.Option(help="Horizon in days.")] = 365,
        r0: Annotated[float, typer.Option(help="Basic reproduction number, every participant.")] = 2.5,
        ifr: Annotated[str, typer.Option(help=f"IFR source: {', '.join(IFR_SOURCES)}.")] = "odriscoll2021",
        priority: Annotated[str, typer.Option(help="oldest-first or pro-rata.")] = "oldest-first",
        plot: Annotated[Path | None, typer.Option(help="Save a bar chart (.png or .svg).")] = None,
        out: Annotated[Path | None, typer.Option(help="Write the table (.csv or .json).")] = None,
        demo: Annotated[bool, typer.Option("--demo", help="Use the built-in demo scenario.")] = False,
    ) -> None:
        """Run each policy on the same scenario and print the deaths it averts (SEIR-V impact model)."""
        from dosewise.world import build_world

        if demo == (scenario is not None):
            raise InputError("give a scenario file or --demo (not both)", field="scenario")
        sc = load_demo() if scenario is None else load_scenario(scenario)
        names = [p.strip() for p in policies.split(",") if p.strip()]
        if priority not in ("oldest-first", "pro-rata"):
            raise InputError("priority must be oldest-first or pro-rata", field="--priority", value=priority)
        if ifr not in IFR_SOURCES:
            raise InputError(f"unknown IFR source; known: {', '.join(IFR_SOURCES)}", field="--ifr", value=ifr)
        params = ImpactParams(days=days, r0=r0, ifr_source=ifr, priority=priority)  # type: ignore[arg-type]
        world = build_world(sc)
        results = run_policies(world, names, params, policy_params=sc.policy, like=like_from_scenario(sc))
        frame = comparison_table(results)
        console.print(comparison_rich_table(frame, f"{sc.name}: deaths averted over {days} days, R0 {r0}"))
        first = next(iter(results.values()))
        proxies = first.setup.notes
        if proxies:
            console.print("[yellow]contact-matrix proxies:[/] " + ", ".join(f"{c} ← {s}" for c, s in proxies.items()))
        console.print("[dim]* not used = no eligible people left + expired in stock + still in stock at the horizon[/]")
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
