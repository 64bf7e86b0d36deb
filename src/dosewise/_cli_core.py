"""Core commands: allocate, products, participants, demo."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from dosewise.allocation import Allocation
from dosewise.errors import InputError
from dosewise.policies import get_policy
from dosewise.products import builtin_products
from dosewise.scenario import Scenario, load_demo, load_scenario
from dosewise.world import World, build_world

console = Console()


def run_allocation(
    sc: Scenario, policy: str | None = None, epidemic: Mapping[str, object] | None = None, *, file: str | None = None
) -> tuple[World, Allocation]:
    """Build the world and allocate; ``epidemic`` overrides the scenario's ``epidemic:`` section
    (what ``optimal`` optimises)."""
    world = build_world(sc)
    if epidemic and any(v is not None for v in epidemic.values()):
        from dosewise.epidemic import with_overrides

        world.meta["epidemic"] = with_overrides(sc.epidemic, dict(epidemic), file=file)
    params = sc.policy if policy is None else sc.policy.model_copy(update={"name": policy})
    return world, get_policy(params.name)(world, params)


def allocation_frame(world: World, alloc: Allocation) -> pd.DataFrame:
    frame = alloc.by_participant_product(world)
    frame = frame[frame["doses"] > 0].copy() if len(alloc.lots) > 1 else frame
    return frame.reset_index(drop=True)


def check_out(out: Path) -> None:
    """Fail before any work if the output file cannot be written where asked."""
    if out.suffix.lower() not in (".csv", ".json", ".parquet"):
        raise InputError("output must end in .csv, .json or .parquet", file=str(out), field="--out", value=out.suffix)
    if not out.parent.is_dir():
        raise InputError("the output folder does not exist", file=str(out), field="--out", value=str(out.parent))


def write_frame(frame: pd.DataFrame, out: Path) -> None:
    check_out(out)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".json":
        frame.to_json(out, orient="records", indent=1)
    elif suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        raise InputError("output must end in .csv, .json or .parquet", file=str(out), field="--out", value=suffix)


def print_allocation(
    world: World, alloc: Allocation, *, highlight: tuple[str, ...] = (), limit: int | None = None
) -> None:
    per = pd.DataFrame({"doses": alloc.totals()}, index=alloc.participants)
    per["name"] = world.participants["name"]
    per["population"] = world.participants["population"]
    per["per_100"] = 100 * per["doses"] / per["population"]
    per = per.sort_values("population", ascending=False)
    table = Table(title=f"{world.name} — policy {alloc.policy}", show_lines=False)
    for col, just in [("", "left"), ("participant", "left"), ("population", "right"), ("doses", "right"),
                      ("per 100", "right")]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    rows = per if limit is None else per.head(limit)
    shown = set(rows.index)
    extra = per.loc[[c for c in highlight if c in per.index and c not in shown]]
    for code, r in pd.concat([rows, extra]).iterrows():
        mark = "▶" if code in highlight else ""  # legend printed below the table
        style = "bold yellow" if code in highlight else None
        table.add_row(mark, f"{code} {r['name']}", f"{r['population']:,.0f}", f"{r['doses']:,.0f}",
                      f"{r['per_100']:.2f}", style=style)
    console.print(table)
    if highlight:
        console.print(f"▶ highlighted: {', '.join(highlight)}")
    lots = alloc.per_lot()
    lt = Table(title="lots")
    for col in ["lot", "product", "supply", "allocated", "buffer", "remainder", "recipients"]:
        lt.add_column(col, justify="left" if col in ("lot", "product") else "right")
    for lot, r in lots.iterrows():
        lt.add_row(str(lot), str(r["product"]), *(f"{int(r[c]):,}" for c in
                                                  ["supply", "allocated", "buffer", "remainder", "recipients"]))
    console.print(lt)
    if limit is not None and len(per) > limit:
        console.print(f"[dim]{len(per) - limit} more participants not shown; use --all or --out FILE[/]")


def register(app: typer.Typer) -> None:
    @app.command()
    def allocate(
        scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
        policy: Annotated[str | None, typer.Option(help="Policy name (default: the scenario's).")] = None,
        out: Annotated[Path | None, typer.Option(help="Write the allocation to .csv, .json or .parquet.")] = None,
        show_all: Annotated[bool, typer.Option("--all", help="Print every participant.")] = False,
        r0: Annotated[float | None, typer.Option(help="R0 for optimal (overrides epidemic.r0).")] = None,
        days: Annotated[int | None, typer.Option(help="Horizon for optimal, 1-3650 days (epidemic.days).")] = None,
        prior_immunity: Annotated[float | None, typer.Option(help="Share immune at the start, [0, 1).")] = None,
        health_system: Annotated[str | None, typer.Option(help="levin2022 or none.")] = None,
        priority: Annotated[str | None, typer.Option(help="oldest-first or pro-rata.")] = None,
    ) -> None:
        """Allocate a scenario's lots by a policy; print a table and optionally write a file.

        ``optimal`` optimises the scenario's ``epidemic:`` setting; the flags override it."""
        if out is not None:
            check_out(out)
        sc = load_scenario(scenario)
        overrides = {"r0": r0, "days": days, "prior_immunity": prior_immunity, "health_system": health_system,
                     "priority": priority}
        world, alloc = run_allocation(sc, policy, overrides, file=str(scenario))
        print_allocation(world, alloc, limit=None if show_all else 30)
        if out is not None:
            write_frame(allocation_frame(world, alloc), out)
            console.print(f"wrote {out}")

    @app.command()
    def products(
        sources: Annotated[bool, typer.Option("--sources", help="Show the source of every figure.")] = False,
    ) -> None:
        """List the built-in product catalogue with the source of every figure."""
        if sources:
            st = Table(title="product sources", show_lines=True)
            for col in ["product", "figure", "source"]:
                st.add_column(col, overflow="fold")
            for p in builtin_products():
                for figure, text in p.sources.items():
                    st.add_row(p.id, figure, text)
            console.print(st)
            return
        table = Table(title="products")
        for col in ["id", "name", "course", "interval d", "storage", "shelf life d", "shipping unit",
                    "eff. symptomatic", "eff. severe"]:
            table.add_column(col)
        for p in builtin_products():
            table.add_row(p.id, p.name, str(p.doses_per_course), str(p.interval_days), p.storage_class,
                          "—" if p.shelf_life_days is None else str(p.shelf_life_days), f"{p.shipping_unit:,}",
                          "—" if p.efficacy_symptomatic is None else f"{p.efficacy_symptomatic:.1%}",
                          "—" if p.efficacy_severe is None else f"{p.efficacy_severe:.1%}")
        console.print(table)
        console.print("[dim]sources of every figure: `dosewise products --sources`[/]")

    @app.command()
    def participants(
        group: Annotated[str, typer.Argument(help="A named group, e.g. AMC92.")],
        year: Annotated[int, typer.Option(help="WPP year for population.")] = 2020,
    ) -> None:
        """List a named group's participants with population, income level and region."""
        from dosewise.reference.countries import country_info
        from dosewise.reference.groups import group_members
        from dosewise.reference.population import population_by_age, wpp_coverage

        codes = group_members(group)
        covered = wpp_coverage()
        have = [c for c in codes if c in covered]
        pops = dict(zip(have, population_by_age(have, year).sum(axis=1), strict=True))
        table = Table(title=f"{group.upper()}: {len(codes)} participants")
        for col in ["ISO3", "name", f"population {year} (WPP 2024)", "income level", "region"]:
            table.add_column(col)
        for c in codes:
            info = country_info(c)
            pop = f"{pops[c]:,.0f}" if c in pops else "[red]not in WPP 2024 — supply in scenario[/]"
            table.add_row(c, info.name, pop, info.income_level or "—", info.region or "—")
        console.print(table)
        missing = [c for c in codes if c not in covered]
        if missing:
            console.print(f"missing from UN WPP 2024 (starsim-data): {', '.join(missing)}")

    @app.command()
    def demo(
        db: Annotated[str | None, typer.Option(help="Write the demo's ledger here (URL or SQLite path); "
                                                    "default: in memory.")] = None,
        who: Annotated[Path | None, typer.Option(help="WHO weekly cases/deaths CSV: rank reallocation by need.")]
        = None,
        out: Annotated[Path | None, typer.Option(help="Write the first round's allocation to a file.")] = None,
    ) -> None:
        """Run the built-in demo: the AMC92 AstraZeneca round, then DPRK's declined CoronaVac, reallocated."""
        from dosewise.demo import run_demo_story

        if out is not None:
            check_out(out)
        sc = load_demo()
        console.rule(f"[bold]1. {sc.name}")
        console.print(sc.description.strip())
        world, alloc = run_allocation(sc)
        neighbours = ("PRK", "MNG", "LAO", "VNM", "KHM", "MMR")
        print_allocation(world, alloc, highlight=neighbours, limit=15)
        per100 = 100 * alloc.totals() / world.population
        i = int(np.flatnonzero(world.codes == "PRK")[0])
        console.print(
            f"DPRK: {alloc.totals()[i]:,} doses = {per100[i]:.2f} per 100 people "
            f"(median of all participants {np.median(per100):.2f}); the published interim forecast of Feb 2021 "
            "gave DPRK 1,992,000 doses, about 7.8–8.0 per 100 like every AZ/SII recipient."
        )
        if out is not None:
            write_frame(allocation_frame(world, alloc), out)
            console.print(f"wrote {out}")
        run_demo_story(db=db, who=who, console=console)
