"""Commands: ``allocate``, ``products``, ``participants``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dosewise.cli._common import OutOption, check_out, console, load_beside, safe, write_rows

if TYPE_CHECKING:
    import pandas as pd

    from dosewise.app import Allocated


COVAX_POLICIES = ("covax-pro-rata", "covax-need-weighted")
"""The policies that apply the COVAX phase-1 rules below."""
COVAX_ONLY = ("small_state_floor", "tranches")
"""Policy fields only :data:`COVAX_POLICIES` apply (every policy applies buffer, caps and shipping units)."""


def print_allocation(result: Allocated, *, highlight: tuple[str, ...] = (), limit: int | None = None) -> None:
    """Doses and doses per 100 people per participant (largest population first), then the lots.

    Works on the arrays, not on frames aligned by participant: with a million participants only
    the ``limit`` largest (and the highlighted ones) are ever sorted and printed."""
    import numpy as np
    import pandas as pd

    from dosewise.policies.pro_rata import first_smallest

    world, alloc = result.world, result.allocation
    codes = alloc.participants
    parts = world.participants
    if not (codes is parts.index or codes.equals(parts.index)):
        parts = parts.loc[codes]
    doses = alloc.totals()
    pop = parts["population"].to_numpy(dtype=np.float64)
    names = parts["name"].to_numpy(dtype=object)
    key = -pop
    pick = np.arange(len(pop)) if limit is None else first_smallest(key, limit)
    rows = pick[np.argsort(key[pick], kind="stable")].tolist()  # largest population first
    shown = set(rows)
    if highlight:
        where = codes.get_indexer(pd.Index(list(highlight)))
        rows += [int(i) for i in where if i >= 0 and int(i) not in shown]
    table = Table(title=f"{safe(world.name)} — policy {safe(alloc.policy)}", show_lines=False)
    for col, just in [("", "left"), ("participant", "left"), ("population (people)", "right"),
                      ("doses", "right"), ("doses per 100 people", "right")]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for i in rows:
        code = str(codes[i])
        mark = "▶" if code in highlight else ""
        style = "bold yellow" if code in highlight else None
        table.add_row(mark, f"{safe(code)} {safe(names[i])}", f"{pop[i]:,.0f}", f"{float(doses[i]):,.0f}",
                      f"{100 * doses[i] / pop[i]:.2f}", style=style)
    console.print(table)
    if highlight:
        console.print(f"▶ highlighted: {', '.join(highlight)}")
    lots = alloc.per_lot()
    lt = Table(title="lots (doses)")
    for col in ["lot", "product", "supply", "allocated", "buffer", "remainder", "recipients"]:
        lt.add_column(col, justify="left" if col in ("lot", "product") else "right")
    for lot, r in lots.iterrows():
        lt.add_row(safe(lot), safe(r["product"]), *(f"{int(r[c]):,}" for c in
                                                  ["supply", "allocated", "buffer", "remainder", "recipients"]))
    console.print(lt)
    console.print(f"[dim]population: {safe(population_sources(parts))}[/]")
    if len(rows) < len(pop):
        console.print(f"[dim]{len(pop) - len(rows)} more participants not shown; use --all or --out FILE[/]")


def population_sources(parts: pd.DataFrame, *, listed: int = 5) -> str:
    """Where the populations came from, one clause per source (codes named for the rarer ones)."""
    source = parts["population_source"].astype(object).where(parts["population_source"].notna(), "no source given")
    counts = source.value_counts(sort=True)
    clauses = []
    for text, count in counts.items():
        if count <= listed:
            codes = ", ".join(str(c) for c in parts.index[(source == text).to_numpy()])
            clauses.append(f"{text} ({codes})")
        else:
            clauses.append(f"{text} ({count:,} participants)")
    return "; ".join(clauses)


def allocate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    policy: Annotated[str | None, typer.Option(help="Policy name (default: the scenario's).")] = None,
    out: OutOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="Print every participant.")] = False,
    r0: Annotated[float | None, typer.Option(help="R0 for optimal (overrides epidemic.r0).")] = None,
    days: Annotated[int | None, typer.Option(help="Horizon for optimal, 1-3,650 days (epidemic.days).")] = None,
    prior_immunity: Annotated[float | None, typer.Option(help="Share immune at the start, [0, 1).")] = None,
    health_system: Annotated[str | None, typer.Option(help="levin2022 or none.")] = None,
    priority: Annotated[str | None, typer.Option(help="oldest-first or pro-rata.")] = None,
) -> None:
    """Allocate a scenario's lots by a policy; print a table and optionally write every row.

    Written rows: participant, product, doses, doses_per_100 (doses per 100 people) and
    coverage (share of the population a full course would cover), one per participant and
    product, participants with no dose included. ``optimal`` optimises the scenario's
    ``epidemic:`` setting; the flags override it.
    """
    from dosewise import app as api
    from dosewise.epidemic import with_overrides

    check_out(out)
    overrides = {"r0": r0, "days": days, "prior_immunity": prior_immunity, "health_system": health_system,
                 "priority": priority}
    with_overrides(None, overrides)  # a bad flag fails before any file is read
    sc = load_beside(scenario, "dosewise.registry")  # pandas and the policies imported meanwhile
    epidemic = with_overrides(sc.epidemic, overrides, file=str(scenario)) if any(
        v is not None for v in overrides.values()) else None
    result = api.allocate(sc, policy=policy, epidemic=epidemic)
    print_allocation(result, limit=None if show_all else 30)
    unapplied = [f for f in COVAX_ONLY if f in sc.policy.model_fields_set and getattr(sc.policy, f) is not None]
    if unapplied and result.allocation.policy not in COVAX_POLICIES:
        console.print(f"[yellow]note:[/] {safe(result.allocation.policy)} does not apply "
                      f"{' or '.join(unapplied)} (only {' and '.join(COVAX_POLICIES)} do); the scenario's "
                      "values were not used")
    if out is not None:
        write_rows(result.frame(), out)


def products(
    sources: Annotated[bool, typer.Option("--sources", help="Show the source of every figure.")] = False,
) -> None:
    """List the built-in product catalogue with the source of every figure."""
    from dosewise.products import builtin_products

    if sources:
        st = Table(title="product sources", show_lines=True)
        for col in ["product", "figure", "source"]:
            st.add_column(col, overflow="fold")
        for p in builtin_products():
            for figure, text in p.sources.items():
                st.add_row(p.id, figure, safe(text, limit=2000))
        console.print(st)
        return
    table = Table(title="products")
    for col in ["id", "name", "course (doses)", "interval (days)", "storage", "shelf life (days)",
                "shipping unit (doses)", "eff. symptomatic", "eff. severe"]:
        table.add_column(col)
    for p in builtin_products():
        table.add_row(p.id, p.name, str(p.doses_per_course), str(p.interval_days), p.storage_class,
                      "—" if p.shelf_life_days is None else str(p.shelf_life_days), f"{p.shipping_unit:,}",
                      "—" if p.efficacy_symptomatic is None else f"{p.efficacy_symptomatic:.1%}",
                      "—" if p.efficacy_severe is None else f"{p.efficacy_severe:.1%}")
    console.print(table)
    console.print("[dim]sources of every figure: `dosewise products --sources`[/]")


def participants(
    group: Annotated[str, typer.Argument(help="A named group, e.g. AMC92.")],
    year: Annotated[int, typer.Option(help="WPP year for population.", min=1950, max=2100)] = 2020,
    out: OutOption = None,
) -> None:
    """List a named group's participants with population, income level and region."""
    from dosewise.reference.countries import country_info
    from dosewise.reference.groups import group_members
    from dosewise.reference.population import population_by_age, wpp_coverage

    check_out(out)
    codes = group_members(group)
    covered = wpp_coverage()
    have = [c for c in codes if c in covered]
    pops = dict(zip(have, population_by_age(have, year).sum(axis=1), strict=True))
    table = Table(title=f"{safe(group.upper())}: {len(codes)} participants")
    for col in ["ISO3", "name", f"population {year} (people, WPP 2024)", "income level", "region"]:
        table.add_column(col)
    rows = []
    for c in codes:
        info = country_info(c)
        pop = f"{pops[c]:,.0f}" if c in pops else "[red]not in WPP 2024 — supply in scenario[/]"
        table.add_row(c, safe(info.name), pop, info.income_level or "—", info.region or "—")
        rows.append({"participant": c, "name": info.name, "population": round(float(pops[c])) if c in pops else None,
                     "income_level": info.income_level, "region": info.region})
    console.print(table)
    missing = [c for c in codes if c not in covered]
    if missing:
        console.print(f"missing from UN WPP 2024 (starsim-data): {', '.join(missing)}")
    if out is not None:
        import pandas as pd

        write_rows(pd.DataFrame(rows), out)


def register(app: typer.Typer) -> None:
    app.command()(allocate)
    app.command()(products)
    app.command()(participants)
