"""``dosewise round …`` for the rest of the mechanism: donations, opt-out, delay, transfers,
readiness, buffer requests, delivery, doses expired unused and the delivery report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dosewise.cli._common import DbOption, OutOption, check_out, console, parse_date, safe, write_rows
from dosewise.errors import InputError

if TYPE_CHECKING:
    import datetime as dt

    from dosewise.app import Desk
    from dosewise.ledger import Event

OnOption = Annotated[str | None, typer.Option("--on", help="Date (YYYY-MM-DD; default: the round's date).")]
RoundArg = Annotated[str, typer.Argument(help="Round id.")]
NoteOption = Annotated[str | None, typer.Option(help="Free text kept with the event.")]


def _desk(db: str | None) -> Desk:
    from dosewise.app import Desk

    return Desk.open(db, actor="cli")


def _day(value: str | None, field: str = "--on") -> dt.date | None:
    return parse_date(value, field)


def _required(value: str, field: str) -> dt.date:
    day = parse_date(value, field)
    assert day is not None
    return day


def _said(events: list[Event] | Event) -> None:
    for ev in events if isinstance(events, list) else [events]:
        console.print(f"recorded {ev.type} (event {ev.seq}, hash {ev.hash[:16]}…)")


def opt_out(round_id: RoundArg, participant: Annotated[str, typer.Argument(help="Participant code.")],
            product: Annotated[str, typer.Argument(help="Product id, as the round's lots name it.")],
            on: OnOption = None, note: NoteOption = None, db: DbOption = None) -> None:
    """Opt a participant out of a product for the rest of the round (its open offers are declined)."""
    with _desk(db) as desk:
        _said(desk.opt_out(round_id, participant, product, on=_day(on), note=note))


def delay(offer: Annotated[str, typer.Argument(help="Offer id (accepted).")],
          until: Annotated[str, typer.Option("--until", help="Ship no earlier than this date.")],
          on: OnOption = None, note: NoteOption = None, db: DbOption = None) -> None:
    """Delay receipt of an accepted offer to a date."""
    with _desk(db) as desk:
        _said(desk.delay(offer, _required(until, "--until"), on=_day(on), note=note))


def transfer(offer: Annotated[str, typer.Argument(help="Offer id (accepted).")],
             to: Annotated[str, typer.Option("--to", help="Receiving participant.")],
             doses: Annotated[int, typer.Option("--doses", help="Doses to transfer.")],
             on: OnOption = None, note: NoteOption = None, db: DbOption = None) -> None:
    """Propose to transfer accepted, unshipped doses to another participant (which must accept)."""
    with _desk(db) as desk:
        ev = desk.transfer(offer, to, doses, on=_day(on), note=note)
    _said(ev)
    console.print(f"transfer id: {safe(ev.payload['transfer'])} — the receiver answers with "
                  "`dosewise round transfer-answer`")


def transfer_answer(round_id: RoundArg, transfer_id: Annotated[str, typer.Argument(help="Transfer id.")],
                    accept: Annotated[bool, typer.Option("--accept/--refuse", help="Accept or refuse.")],
                    on: OnOption = None, note: NoteOption = None, db: DbOption = None) -> None:
    """The receiving participant accepts or refuses a transfer."""
    with _desk(db) as desk:
        _said(desk.answer_transfer(round_id, transfer_id, accept, on=_day(on), note=note))


def ready(round_id: RoundArg, participant: Annotated[str, typer.Argument(help="Participant code.")],
          product: Annotated[str, typer.Argument(help="Product id.")],
          condition: Annotated[str, typer.Argument(help="deployment_plan, indemnity, import_permit or cold_chain.")],
          on: Annotated[str, typer.Option("--on", help="Date the condition was met.")],
          note: NoteOption = None, db: DbOption = None) -> None:
    """Record a readiness condition a participant met for a product (shipment waits for them)."""
    with _desk(db) as desk:
        _said(desk.ready(round_id, participant, product, condition, _required(on, "--on"), note=note))


def donate(round_id: RoundArg, lot: Annotated[Path, typer.Argument(help="YAML file with one lot: id, product, "
                                                                      "doses, available, expiry, donor, channel, "
                                                                      "earmarks, pledged.")],
           on: OnOption = None, db: DbOption = None) -> None:
    """Add a donor's lot to a running round (refused when no earmarked participant can use it in time)."""
    from dosewise.yamlread import read_yaml

    try:
        text = lot.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=str(lot)) from None
    data = read_yaml(text, file=str(lot))
    if not isinstance(data, dict):
        raise InputError("a donation file holds one lot as a mapping", file=str(lot))
    with _desk(db) as desk:
        _said(desk.donate(round_id, data, on=_day(on)))


def buffer_request(round_id: RoundArg, lot: Annotated[str, typer.Option("--lot", help="Lot id.")],
                   participant: Annotated[str, typer.Option("--participant", help="Applicant (participant).")],
                   doses: Annotated[int, typer.Option("--doses", help="Doses asked for.")],
                   for_whom: Annotated[str, typer.Option("--for", help="For whom (population served).")],
                   why: Annotated[str, typer.Option("--why", help="Why.")],
                   request: Annotated[str | None, typer.Option("--id", help="Request id (default B<n>).")] = None,
                   on: OnOption = None, db: DbOption = None) -> None:
    """Apply to a lot's humanitarian buffer."""
    with _desk(db) as desk:
        ev = desk.request_buffer(round_id, lot, participant, doses, for_whom=for_whom, why=why, on=_day(on),
                                 request=request)
    _said(ev)
    console.print(f"request id: {safe(ev.payload['request'])}")


def buffer_decide(round_id: RoundArg, request: Annotated[str, typer.Argument(help="Request id.")],
                  approve: Annotated[bool, typer.Option("--approve/--refuse", help="Approve or refuse.")],
                  reason: Annotated[str | None, typer.Option(help="Why (required to refuse).")] = None,
                  on: OnOption = None, db: DbOption = None) -> None:
    """Approve (doses leave the buffer, held by the applicant) or refuse a buffer request."""
    with _desk(db) as desk:
        _said(desk.decide_buffer(round_id, request, approve, on=_day(on), reason=reason))


def deliver(round_id: RoundArg, shipment: Annotated[str, typer.Argument(help="Shipment id.")],
            on: Annotated[str, typer.Option("--on", help="Date delivered.")], db: DbOption = None) -> None:
    """Confirm a shipment's delivery; records the doses' shelf life left on arrival."""
    with _desk(db) as desk:
        ev = desk.deliver(round_id, shipment, on=_required(on, "--on"))
    _said(ev)
    console.print(f"shelf life on arrival: {ev.payload['shelf_life_days']} days")


def expire_unused(round_id: RoundArg, shipment: Annotated[str, typer.Argument(help="Shipment id.")],
                  doses: Annotated[int, typer.Option("--doses", help="Delivered doses that expired unused.")],
                  on: Annotated[str, typer.Option("--on", help="Date (on or after the lot's expiry).")],
                  db: DbOption = None) -> None:
    """Record delivered doses that expired unused at the participant."""
    with _desk(db) as desk:
        _said(desk.expire_unused(round_id, shipment, doses, on=_required(on, "--on")))


def report(round_id: RoundArg, out: OutOption = None, db: DbOption = None) -> None:
    """Delivery report per participant and product: offered, accepted, shipped, delivered,
    expired unused, still to ship, shelf life on arrival."""
    check_out(out)
    with _desk(db) as desk:
        frame = desk.delivery_report(round_id)
    table = Table(title=f"deliveries in round {safe(round_id)} (doses)")
    for col in frame.columns:
        table.add_column(col.replace("_", " "), justify="left" if col in ("participant", "product") else "right")
    for _, r in frame.iterrows():
        table.add_row(*(safe(v) if isinstance(v, str) else ("" if v is None or v != v else f"{v:,.0f}")
                        for v in r.tolist()))
    console.print(table)
    if out is not None:
        write_rows(frame, out)


def register(app: typer.Typer) -> None:
    commands: list[tuple[str, Callable[..., None]]] = [("opt-out", opt_out), ("delay", delay), ("transfer", transfer),
                     ("transfer-answer", transfer_answer), ("ready", ready), ("donate", donate),
                     ("buffer-request", buffer_request), ("buffer-decide", buffer_decide), ("deliver", deliver),
                     ("expire-unused", expire_unused), ("report", report)]
    for name, fn in commands:
        app.command(name)(fn)
