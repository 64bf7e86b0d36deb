"""``dosewise ledger`` commands: verify, export, log."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dosewise.cli._common import DbOption, console, safe

__all__ = ["register"]

ledger_app = typer.Typer(
    name="ledger",
    help="Inspect, verify and export the append-only, hash-chained event ledger.",
    no_args_is_help=True,
)
class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@ledger_app.command("verify")
def verify(db: DbOption = None) -> None:
    """Walk the hash chain and report the first bad event.

    Exit code 0: every event verified.

    Exit code 1: tampering found (an edited, deleted or reordered event, or a broken link), or a round whose events do not balance (an offer made twice, open doses without offers); the first bad seq or round and the reason are printed.

    Exit code 2: the ledger could not be opened or read.
    """  # noqa: E501
    from dosewise.app import Desk

    with Desk.open(db) as desk:
        report = desk.verify()
        rounds = desk.audit_rounds() if report.ok else {}
    console.print(f"events checked: {report.checked}")
    console.print(f"head: seq {report.head_seq or 0}, hash {report.head_hash or '-'}", soft_wrap=True)
    if not report.ok:
        console.print(f"[bold red]TAMPERED[/] at seq {report.first_bad_seq}: {safe(report.problem)}",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    broken = {rid: problems for rid, problems in rounds.items() if problems}
    if broken:
        for rid, problems in broken.items():
            console.print(f"[bold red]ROUND {safe(rid)} DOES NOT BALANCE[/]: {safe('; '.join(problems))}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[bold green]OK[/]: the hash chain verifies and every dose of {len(rounds)} round(s) "
                  "is accounted for")


@ledger_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.jsonl,
    db: DbOption = None,
) -> None:
    """Export every event (all fields, hashes included) to JSON Lines, CSV or Parquet."""
    from dosewise.app import Desk

    with Desk.open(db) as desk:
        n = desk.export(out, format.value)
    console.print(f"wrote {n} events to {safe(out)} ({format.value})")


@ledger_app.command("log")
def log(
    db: DbOption = None,
    round_id: Annotated[str | None, typer.Option("--round", help="Only events of this round.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the last N events.")] = 50,
) -> None:
    """Show the latest events as a table."""
    from dosewise.app import Desk
    from dosewise.ledger.events import format_time

    with Desk.open(db) as desk:
        events = desk.log(round_id=round_id, limit=limit)
    table = Table(title=f"ledger events ({len(events)} shown)")
    columns = ("seq", "recorded (UTC)", "type", "round", "offer", "participant", "actor", "payload", "hash")
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in ("seq", "type", "participant"))
    for ev in events:
        payload = json.dumps(ev.payload, sort_keys=True, ensure_ascii=False)
        when = format_time(ev.recorded_at)[:16].replace("T", " ")
        table.add_row(str(ev.seq), when, safe(ev.type), safe(ev.round_id or ""), safe(ev.offer_id or ""),
                      safe(ev.participant or ""), safe(ev.actor), safe(payload, limit=60), ev.hash[:12])
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``ledger`` command group to the main app."""
    app.add_typer(ledger_app, name="ledger")
