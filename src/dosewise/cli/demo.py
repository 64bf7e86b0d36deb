"""``dosewise demo``: the first COVAX AstraZeneca round among the AMC92 participants, then the
CoronaVac doses for DPRK, declined and reallocated, all recorded on a verifiable ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dosewise.cli._common import check_out, console, safe, write_rows

if TYPE_CHECKING:
    from dosewise.app import DemoResult


def demo(
    db: Annotated[str | None, typer.Option(help="Write the demo's ledger here (URL or SQLite path); "
                                                "default: in memory.")] = None,
    who: Annotated[Path | None, typer.Option(help="WHO weekly cases/deaths CSV: rank reallocation by need.")]
    = None,
    out: Annotated[Path | None, typer.Option(
        "--out", show_default=False,
        help="Also write the AMC92 round's allocation (one row per participant and product) to FILE: .csv, .json "
             "or .parquet. The CoronaVac round's offers: `dosewise round offers demo-coronavac-2021-08 --db DB "
             "--out FILE`.")] = None,
    impact: Annotated[bool, typer.Option(help="Value the CoronaVac round before and after the decline "
                                              "with the impact model.")] = True,
    serve: Annotated[bool, typer.Option("--serve", help="Open the demo in the web dashboard instead: the AMC92 "
                                                        "round played, DPRK's CoronaVac offer awaiting its answer; "
                                                        "prints the URL and one API key per role.")] = False,
    port: Annotated[int, typer.Option(help="With --serve: the port on 127.0.0.1.", min=1, max=65535)] = 8000,
) -> None:
    """Run the built-in demo: the AMC92 AstraZeneca round, then DPRK's declined CoronaVac, reallocated."""
    from dosewise import app as api

    check_out(out)
    if who is not None and not who.is_file():
        from dosewise.errors import InputError

        raise InputError("file not found", file=str(who), field="--who")
    if serve:
        _serve(db, who, port)
        return
    first = api.load("demo")
    console.rule(f"[bold]1. {safe(first.name)}")
    console.print(safe(first.description.strip(), limit=5000))
    with api.Desk.open(db or "memory", create=True, actor="covax-demo") as desk:
        result = api.run_demo(desk, who=who, impact=impact)
        _story(result, db=db)
    if out is not None:
        write_rows(result.allocation.frame(), out)


def _serve(db: str | None, who: Path | None, port: int) -> None:
    """Record the demo on a fresh ledger, make its keys, and serve the dashboard on 127.0.0.1."""
    import tempfile

    import uvicorn

    from dosewise import app as api
    from dosewise.errors import InputError
    from dosewise.service.app import create_app
    from dosewise.service.settings import Settings

    if db is None:
        db = str(Path(tempfile.mkdtemp(prefix="dosewise-demo-")) / "demo.db")
    elif Path(db).exists():
        raise InputError("the demo writes a new ledger: this file exists already", field="--db", value=db)
    console.print("recording the demo rounds …")
    keys: list[tuple[str, str, str]] = []
    with api.Desk.open(db, create=True, actor="covax-demo") as desk:
        first, second = api.stage_demo(desk, who=who)
        for role, name, participant in api.DEMO_KEYS:
            ident, token = desk.create_key(role, name=name, participant=participant, by="covax-demo")
            keys.append((role, ident.participant or ident.name, token))
    url = f"http://127.0.0.1:{port}/web/"
    console.print(f"ledger: {safe(db)}  (rounds {first.round_id}, {second.round_id})", highlight=False)
    console.print(f"dashboard: [bold]{url}[/]  — log in with one of these keys (made for this demo ledger only):",
                  highlight=False)
    for role, who_, token in keys:
        console.print(f"  {role:<12} {safe(who_):<18} {token}", highlight=False, soft_wrap=True)
    console.print("Log in as PRK to decline its CoronaVac offer; the secretariat's board updates at once. "
                  "Ctrl-C stops the server.", highlight=False)
    settings = Settings(db=db, who=who, port=port)  # type: ignore[call-arg]
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)


def _story(result: DemoResult, *, db: str | None) -> None:
    import numpy as np

    from dosewise.cli.allocate import print_allocation
    from dosewise.cli.rounds import print_offers, print_status

    alloc = result.allocation
    world = alloc.world
    print_allocation(alloc, highlight=("PRK", "MNG", "LAO", "VNM", "KHM", "MMR"), limit=15)
    totals = alloc.allocation.totals()
    per100 = 100 * totals / world.population
    i = int(np.flatnonzero(world.codes == "PRK")[0])
    india = int(np.flatnonzero(world.codes == "IND")[0])
    others = np.delete(per100, india)
    console.print(
        f"DPRK: {totals[i]:,} doses = {per100[i]:.2f} per 100 people; India, held at its supply deal: "
        f"{totals[india]:,} = {per100[india]:.2f} per 100; the other participants {np.median(others):.2f} per 100 "
        "(median)."
    )
    console.print(
        "[dim]Published (COVAX interim forecast, 3 Feb 2021): DPRK 1,992,000 doses, 7.73 per 100 on the UN WPP 2019 "
        "population COVAX used (25.8 M); India 97,164,000 (7.04 per 100); most others near 7.7. Why this demo "
        "differs: the forecast's envelope also served self-financing participants, which are left out here, so "
        "each AMC92 participant gets more; and UN WPP 2024 revised the 2020 populations (set "
        "participants.overrides.CODE.population to use another estimate).[/]"
    )
    second = result.second
    console.rule(f"[bold]2. {safe(second.opened['name'])}")
    if result.need_source:
        console.print(f"need scores as of 2021-08-29 from {safe(result.need_source)}")
    prk = next(o for o in second.offers.values() if o["participant"] == "PRK")
    console.print(
        f"DPRK was offered {prk['doses']:,} CoronaVac doses and [bold]{prk['status']}[/] them "
        f"(reason: {safe(prk['reason'])}; note: {safe(prk['note'])}; wish: {safe(prk['wish'])})."
    )
    signed = any("signature" in ev.payload for ev in result.signed_answers)
    if signed:
        console.print("DPRK's answer carries DPRK's own Ed25519 signature (its key registered in the ledger as "
                      "key.registered); `ledger verify` checks it. An answer in DPRK's name without it is refused "
                      "(nothing recorded), and one written into the database by other means is reported as forged.")
    for p in second.passes:
        for lot, info in p["lots"].items():
            order = ("need score (highest first)" if p["order"] == "need"
                     else "pro rata to population (no need scores recorded in the round: pass --who FILE or run "
                     "`dosewise data pull who` to rank by need)")
            console.print(f"pass {p['pass']} on {p['on']}: {info['pool']:,} doses of {safe(lot)} re-offered by "
                          f"{order}; {len(info['offered'])} offers")
            for why, codes in info["skipped"].items():
                console.print(f"  skipped ({safe(why)}): {', '.join(codes[:12])}{' …' if len(codes) > 12 else ''}")
    print_offers(second, limit=12, compact=True)
    if result.bilateral:
        b = result.bilateral
        o, terms = b["offer"], b["terms"]
        console.rule(f"[bold]3. Beside it: {safe(b['name'])}")
        console.print(
            f"lot {safe(b['lot'])}: {o['doses']:,} doses of Sputnik V, donor {safe(terms['donor'])}, channel "
            f"{safe(terms['channel'])}, earmarked for {', '.join(terms['earmarks']['recipients'])}, pledged "
            f"{safe(terms.get('pledged', '?'))}; offer {safe(o['offer'])} is [bold]{safe(o['status'])}[/] in the "
            f"ledger, outside the facility's pool (never re-offered by a pass)."
        )
        console.print(f"status as reported: {safe(b['status'])} — {safe(b['sources']['status'])}")
        for key in ("offer", "interest", "doses"):
            console.print(f"[dim]source ({key}): {safe(b['sources'][key])}[/]")
    print_status(result.first)
    print_status(second)
    if result.impact is not None:
        frame = result.impact.frame
        console.print("deaths averted by the CoronaVac round (impact model, R0 2.5, 365 days):")
        for label, row in frame.iterrows():
            console.print(f"  {safe(label)}: {float(row['deaths_averted']):,.0f} "
                          f"({float(row['doses_administered']):,.0f} doses administered)")
    report = result.verify
    console.print(f"ledger verify: {'[green]OK[/]' if report.ok else '[red]FAILED[/]'} — {report.checked} events, "
                  f"head {report.head_hash[:16] if report.head_hash else '-'}…"
                  + (f" (written to {safe(db)}; check with `dosewise ledger verify --db {safe(db)}`)" if db else ""))


def register(app: typer.Typer) -> None:
    app.command()(demo)
