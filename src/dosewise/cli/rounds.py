"""``dosewise round …``: open rounds, answer offers, advance time, ship; every step on the ledger."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dosewise.cli._common import DbOption, OutOption, check_out, console, parse_date, safe, write_rows
from dosewise.errors import InputError
from dosewise.vocabulary import DECLINE_REASONS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dosewise.app import Desk
    from dosewise.ledger import Event
    from dosewise.rounds import RoundState

round_app = typer.Typer(help="Open rounds, answer offers, advance time; every step goes on the ledger.",
                        no_args_is_help=True)


def _desk(db: str | None, *, create: bool = False) -> Desk:
    from dosewise.app import Desk

    return Desk.open(db, create=create, actor="cli")


def note_no_ledger_key() -> None:
    """One dim line when the ledger has no key of its own, so a round step wrote no checkpoint."""
    import os

    from dosewise.ledger.keys import LEDGER_KEY_ENV

    if not os.environ.get(LEDGER_KEY_ENV):
        console.print(f"[dim]no ledger key (${LEDGER_KEY_ENV} unset): no checkpoint written; make one with "
                      f"`dosewise keys gen --out ledger.key` and set ${LEDGER_KEY_ENV} to it (README: \"What each "
                      f"party keeps\")[/]", highlight=False, soft_wrap=True)


def print_offers(state: RoundState, *, only: str | None = None, limit: int | None = None,
                 compact: bool = False) -> None:
    frame = state.offers_frame()
    if only:
        frame = frame[frame["status"] == only]
    cols = (["participant", "doses", "status", "pass", "reason / why"] if compact else
            ["offer", "participant", "lot", "doses", "status", "deadline", "pass", "reason / why"])
    table = Table(title=f"offers in round {safe(state.round_id)}")
    for col in cols:
        table.add_column(col, justify="right" if col in ("doses", "pass") else "left", overflow="fold")
    rows = frame if limit is None else frame.head(limit)
    for _, r in rows.iterrows():
        why = r["reason"] if isinstance(r["reason"], str) else r["why"]
        if isinstance(r["note"], str):
            why = f"{why}; note: {r['note']}"
        if isinstance(r["wish"], str):
            why = f"{why}; wish: {r['wish']}"
        cells = {"offer": safe(r["offer"]), "participant": safe(r["participant"]), "lot": safe(r["lot"]),
                 "doses": f"{int(r['doses']):,}", "status": str(r["status"]), "deadline": str(r["deadline"]),
                 "pass": str(r["pass"]), "reason / why": safe(why)}
        table.add_row(*(cells[c] for c in cols))
    console.print(table)
    if limit is not None and len(frame) > limit:
        console.print(f"[dim]{len(frame) - limit} more offers; `dosewise round offers {safe(state.round_id)}` "
                      "lists all[/]")


def print_status(state: RoundState) -> None:
    from dosewise.rounds.state import lot_balances

    rows = lot_balances(state)
    table = Table(title=f"round {safe(state.round_id)} on {state.today} — per-lot balance in doses "
                        "(open + accepted + pool + expired + buffer = supply; open = Σ open offers)")
    cols = ["supply", "open", "accepted", "pool", "expired", "buffer"]
    table.add_column("lot")
    table.add_column("product")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("balanced")
    for lot, r in rows.items():
        table.add_row(safe(lot), safe(r["product"]), *(f"{int(r[c]):,}" for c in cols),
                      "yes" if r["balanced"] else "[red]NO[/]")
    console.print(table)
    counts = Counter(state.offers.column("status")).most_common()  # as value_counts orders them
    console.print("offers: " + ", ".join(f"{k} {v}" for k, v in counts))
    # a lot is "balanced" exactly when it has none of the problems, so they are worded only if one is not
    problems = [] if all(r["balanced"] for r in rows.values()) else state.problems()
    if problems:
        console.print("[bold red]the round does not balance[/]: " + safe("; ".join(problems))
                      + " — run `dosewise ledger verify`")


@round_app.command("open")
def open_(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    db: DbOption = None,
    round_id: Annotated[str | None, typer.Option("--id", help="Round id (default: from the scenario).")] = None,
    who: Annotated[Path | None, typer.Option(help="WHO weekly CSV: record need scores for reallocation.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date of the need scores (default: the round's "
                                                               "opening date).")] = None,
) -> None:
    """Open a round: allocate the scenario's lots by its policy and record the offers (and, with
    --who, the need scores its reallocation ranks by)."""
    from dosewise import app as api

    sc = api.load(scenario)
    need = None
    source = ""
    if who is not None:
        from dosewise.world import build_world

        day = parse_date(as_of, "--as-of") or sc.round.opens or sc.as_of or min(lot.available for lot in sc.lots)
        need = api.need_for_world(build_world(sc), who, day)
        source = f"{who.name} as of {day}"
    with _desk(db, create=True) as desk:
        before = desk.head()
        state = desk.open_round(sc, round_id=round_id, need=need, file=str(scenario), need_source=source)
        after = desk.head()
        if before is not None and after is not None and after.seq == before.seq:
            console.print(f"round [bold]{safe(state.round_id)}[/] already open (same scenario, now at "
                          f"{state.today}); nothing recorded — give --id NEW to open another round")
        else:
            console.print(f"opened round [bold]{safe(state.round_id)}[/] with {len(state.offers)} offers")
        print_status(state)
    note_no_ledger_key()


@round_app.command("offers")
def offers(
    round_id: Annotated[str, typer.Argument(help="Round id.")],
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="Only offers with this status.")] = None,
    out: OutOption = None,
) -> None:
    """List a round's offers."""
    check_out(out)
    with _desk(db) as desk:
        state = desk.round(round_id)
    print_offers(state, only=status)
    if out is not None:
        frame = state.offers_frame()
        write_rows(frame if status is None else frame[frame["status"] == status], out)


@contextlib.contextmanager
def _flags(names: dict[str, str]) -> Iterator[None]:
    """Input errors that name a call's argument name the command's flag instead."""
    try:
        yield
    except InputError as exc:
        if exc.field in names:
            exc.field = names[str(exc.field)]
            exc.args = (exc._render(),)
        raise


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
    doses: Annotated[int | None, typer.Option(help="With --accept: accept only this many doses; the rest "
                                                   "returns to the pool at once.")] = None,
    sign_with: Annotated[Path | None, typer.Option("--sign-with", help="Sign the answer with this private key "
                                                   "file (the participant's, registered with `dosewise keys "
                                                   "register`).")] = None,
    db: DbOption = None,
) -> None:
    """Accept (in full, or in part with --doses) or decline an open offer before its deadline."""
    if accept == (decline is not None):
        raise InputError("give exactly one of --accept or --decline REASON", field="--accept/--decline")
    sign = None
    if sign_with is not None:
        from dosewise.ledger.signing import Signer

        sign = Signer.from_file(sign_with).sign
    with _desk(db) as desk, _flags({"reason": "--decline", "doses": "--doses", "note": "--note", "wish": "--wish",
                                    "on": "--on", "key": "--key"}):
        ev = desk.respond(offer, "accept" if accept else "decline", reason=decline, note=note, wish=wish,
                          on=parse_date(on, "--on"), key=key, doses=doses, sign=sign)
    console.print(f"recorded {ev.type} for {safe(offer)} (event {ev.seq}, hash {ev.hash[:16]}…)")


@round_app.command("advance")
def advance(
    round_id: Annotated[str, typer.Argument(help="Round id.")],
    to: Annotated[str, typer.Option("--to", help="New date of the round (YYYY-MM-DD).")],
    db: DbOption = None,
    who: Annotated[Path | None, typer.Option(help="WHO weekly CSV: re-rank by need as of --to (recorded).")] = None,
) -> None:
    """Move the round's date: overdue offers lapse, unusable doses expire, the pool is re-offered
    by the round's order (need: by the need scores recorded in the round, or from --who)."""
    from dosewise import app as api

    day = parse_date(to, "--to")
    assert day is not None
    with _desk(db) as desk:
        need = api.need_for_world(desk.world(round_id), who, day) if who is not None else None
        events = desk.advance(round_id, day, need=need, need_source="" if who is None else f"{who.name} as of {day}")
        state = desk.round(round_id)
    made = [e for e in events if e.type == "offer.made"]
    if not events:
        console.print(f"round {safe(round_id)} is already at {day}: nothing new recorded")
    else:
        order = next((e.payload.get("order") for e in events if e.type == "reallocation.pass"), "?")
        console.print(f"advanced {safe(round_id)} to {day}: {len(events)} events, {len(made)} new offers "
                      f"(order: {safe(order)})")
        note_no_ledger_key()
    recorded_need = next((e for e in events if e.type == "need.recorded"), None)
    if recorded_need is not None:
        console.print(f"need scores from {safe(recorded_need.payload.get('source') or 'no source given')}")
    elif state.need is not None and any(e.type == "reallocation.pass" and e.payload.get("order") == "need"
                                        for e in events):
        console.print(f"need scores as recorded in the round: {safe(state.need_source or 'no source given')}")
    if made:
        print_offers(state, only="offered")
    print_status(state)
    for line in pool_reasons(state, events):
        console.print(line)


def pool_reasons(state: RoundState, events: Sequence[Event]) -> list[str]:
    """One line per lot whose doses stay in the pool after this advance's pass, saying why."""
    from dosewise.rounds import balances

    passes = [e for e in events if e.type == "reallocation.pass"]
    if not passes:
        return []
    lots = passes[-1].payload.get("lots", {})
    pool = balances(state)["pool"]
    out = []
    for lot, info in lots.items():
        left = int(pool.get(lot, 0))
        if left <= 0:
            continue
        skipped = info.get("skipped") or {}
        why = "; ".join(f"{reason}: {', '.join(map(str, codes[:12]))}" + (" …" if len(codes) > 12 else "")
                        for reason, codes in skipped.items()) or "no participant could take more of it"
        head = "offered to nobody" if not info.get("offered") else "the participants offered it can take no more"
        out.append(f"{left:,} doses of {safe(lot)} stay in the pool after pass {passes[-1].payload.get('pass', '?')}: "
                   f"{head} (passed over — {safe(why)})")
    return out


@round_app.command("ship")
def ship(
    offer: Annotated[str, typer.Argument(help="Offer id (accepted).")],
    on: Annotated[str, typer.Option("--on", help="Date shipped (or delivered), YYYY-MM-DD.")],
    delivered: Annotated[bool, typer.Option("--delivered", help="Record delivery of the whole offer instead of "
                                                                "shipment.")] = False,
    doses: Annotated[int | None, typer.Option(help="Ship this many of the accepted doses as one shipment.")] = None,
    shipment: Annotated[str | None, typer.Option(help="Shipment id (default: OFFER:S<n>).")] = None,
    db: DbOption = None,
) -> None:
    """Record shipment (or, with --delivered, delivery) of an accepted offer."""
    day = parse_date(on, "--on")
    assert day is not None
    with _desk(db) as desk:
        ev = desk.ship(offer, on=day, delivered=delivered, doses=doses, shipment=shipment)
    p = ev.payload
    extra = f" shipment {safe(p['shipment'])}, {p['doses']:,} doses" if "shipment" in p else ""
    console.print(f"recorded {ev.type} for {safe(offer)}{extra} (event {ev.seq})")


@round_app.command("status")
def status(round_id: Annotated[str, typer.Argument(help="Round id.")], db: DbOption = None) -> None:
    """Per-lot balance and offer counts of a round."""
    with _desk(db) as desk:
        print_status(desk.round(round_id))


@round_app.command("list")
def list_(db: DbOption = None) -> None:
    """Rounds recorded in the ledger."""
    with _desk(db) as desk:
        for rid in desk.round_ids():
            console.print(safe(rid))


def register(app: typer.Typer) -> None:
    from dosewise.cli import mechanism

    mechanism.register(round_app)
    app.add_typer(round_app, name="round")
