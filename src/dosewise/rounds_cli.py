"""``dosewise round …`` commands and the demo's round story."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dosewise.errors import InputError
from dosewise.ledger import Store, default_db, existing_db, open_store
from dosewise.rounds import DECLINE_REASONS, Rounds, RoundState, balances

console = Console()
round_app = typer.Typer(help="Open rounds, answer offers, advance time; every step goes on the ledger.",
                        no_args_is_help=True)
DbOption = Annotated[str | None, typer.Option("--db", help="Ledger URL or SQLite path (default $DOSEWISE_DB "
                                                           "or ./dosewise.db).")]


def _store(db: str | None, *, create: bool = False) -> Store:
    """The ledger; only ``round open`` may create a new SQLite file."""
    return open_store(db or default_db() if create else existing_db(db))


def _date(value: str | None, field: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError("not an ISO date (YYYY-MM-DD)", field=field, value=value) from None


def print_offers(state: RoundState, *, only: str | None = None, limit: int | None = None,
                 compact: bool = False) -> None:
    frame = state.offers_frame()
    if only:
        frame = frame[frame["status"] == only]
    cols = (["participant", "doses", "status", "pass", "reason / why"] if compact else
            ["offer", "participant", "lot", "doses", "status", "deadline", "pass", "reason / why"])
    table = Table(title=f"offers in round {state.round_id}")
    for col in cols:
        table.add_column(col, justify="right" if col in ("doses", "pass") else "left", overflow="fold")
    rows = frame if limit is None else frame.head(limit)
    for _, r in rows.iterrows():
        why = r["reason"] if isinstance(r["reason"], str) else r["why"]
        if isinstance(r["wish"], str):
            why = f"{why}; wish: {r['wish']}"
        cells = {"offer": str(r["offer"]), "participant": str(r["participant"]), "lot": str(r["lot"]),
                 "doses": f"{int(r['doses']):,}", "status": str(r["status"]), "deadline": str(r["deadline"]),
                 "pass": str(r["pass"]), "reason / why": str(why)}
        table.add_row(*(cells[c] for c in cols))
    console.print(table)
    if limit is not None and len(frame) > limit:
        console.print(f"[dim]{len(frame) - limit} more offers; `dosewise round offers {state.round_id}` lists all[/]")


def print_status(state: RoundState) -> None:
    frame = balances(state)
    table = Table(title=f"round {state.round_id} on {state.today} — per-lot balance "
                        "(open + accepted + pool + expired + buffer = supply)")
    cols = ["supply", "open", "accepted", "pool", "expired", "buffer"]
    table.add_column("lot")
    table.add_column("product")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("balanced")
    for lot, r in frame.iterrows():
        table.add_row(str(lot), str(r["product"]), *(f"{int(r[c]):,}" for c in cols),
                      "yes" if r["balanced"] else "[red]NO[/]")
    console.print(table)
    counts = state.offers_frame()["status"].value_counts()
    console.print("offers: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@round_app.command("open")
def open_(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    db: DbOption = None,
    round_id: Annotated[str | None, typer.Option("--id", help="Round id (default: from the scenario).")] = None,
) -> None:
    """Open a round: allocate the scenario's lots by its policy and record the offers."""
    try:
        text = scenario.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read scenario file: {exc.strerror}", file=str(scenario)) from None
    rounds = Rounds(_store(db, create=True), actor="cli")
    rid = rounds.open(text, file=str(scenario), round_id=round_id)
    state = rounds.state(rid)
    console.print(f"opened round [bold]{rid}[/] with {len(state.offers)} offers")
    print_status(state)


@round_app.command("offers")
def offers(
    round_id: Annotated[str, typer.Argument(help="Round id.")],
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="Only offers with this status.")] = None,
) -> None:
    """List a round's offers."""
    print_offers(Rounds(_store(db)).state(round_id), only=status)


@round_app.command("respond")
def respond(
    offer: Annotated[str, typer.Argument(help="Offer id.")],
    accept: Annotated[bool, typer.Option("--accept", help="Accept the offer.")] = False,
    decline: Annotated[str | None, typer.Option("--decline", help=f"Decline, with a reason: "
                                                                  f"{', '.join(DECLINE_REASONS)}.")] = None,
    note: Annotated[str | None, typer.Option(help="Free text kept with the answer.")] = None,
    wish: Annotated[str | None, typer.Option(help="Where the participant wishes declined doses to go.")] = None,
    on: Annotated[str | None, typer.Option(help="Date of the answer (default: the round's date).")] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key: a retried answer records once.")] = None,
    db: DbOption = None,
) -> None:
    """Accept or decline an open offer before its deadline."""
    if accept == (decline is not None):
        raise InputError("give exactly one of --accept or --decline REASON", field="respond")
    rounds = Rounds(_store(db), actor="cli")
    ev = rounds.respond(offer, "accept" if accept else "decline", reason=decline, note=note, wish=wish,
                        on=_date(on, "--on"), idempotency_key=key)
    console.print(f"recorded {ev.type} for {offer} (event {ev.seq})")


@round_app.command("advance")
def advance(
    round_id: Annotated[str, typer.Argument(help="Round id.")],
    to: Annotated[str, typer.Option("--to", help="New date of the round (YYYY-MM-DD).")],
    db: DbOption = None,
    who: Annotated[Path | None, typer.Option(help="WHO weekly CSV: re-offer by need score as of --to.")] = None,
) -> None:
    """Move the round's date: overdue offers lapse, unusable doses expire, the pool is re-offered
    (by need score when --who is given, otherwise pro rata to population)."""
    day = _date(to, "--to")
    assert day is not None
    rounds = Rounds(_store(db), actor="cli")
    if who is not None:
        from dosewise.policies.need_weighted import need_from_files

        rounds.need = need_from_files(rounds.world(round_id), str(who), day)
    elif rounds.state(round_id).opened.get("reallocation") == "need":
        console.print("[dim]no --who FILE: the pool is re-offered pro rata to population, not by need[/]")
    events = rounds.advance(round_id, day)
    made = [e for e in events if e.type == "offer.made"]
    console.print(f"advanced {round_id} to {day}: {len(events)} events, {len(made)} new offers")
    state = rounds.state(round_id)
    if made:
        print_offers(state, only="offered")
    print_status(state)


@round_app.command("status")
def status(round_id: Annotated[str, typer.Argument(help="Round id.")], db: DbOption = None) -> None:
    """Per-lot balance and offer counts of a round."""
    print_status(Rounds(_store(db)).state(round_id))


@round_app.command("list")
def list_(db: DbOption = None) -> None:
    """Rounds recorded in the ledger."""
    for rid in Rounds(_store(db)).rounds():
        console.print(rid)


def register(app: typer.Typer) -> None:
    app.add_typer(round_app, name="round")
