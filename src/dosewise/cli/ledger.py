"""``dosewise ledger`` commands (verify, checkpoint, cosign, prove, verify-receipt, export-checkpoints,
export, log) and ``dosewise keys`` (gen, register).

The trust commands call the ledger library (:mod:`dosewise.ledger.audit`, ``.checkpoints``,
``.keys``, ``.signing``) directly, imported inside each command so ``--help`` stays fast."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dosewise.cli._common import DbOption, console, safe

if TYPE_CHECKING:
    from dosewise.ledger import Store

LEDGER_KEY_ENV = "DOSEWISE_LEDGER_KEY"

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


CheckpointOption = Annotated[
    list[Path] | None,
    typer.Option("--checkpoint", help="A checkpoint file you hold (repeatable: several parties' or witnesses' "
                 "checkpoints).", show_default=False),
]


def _open_readonly(db: str | None) -> Store | None:
    """The ledger opened read-only, or None when there is no ledger file at all."""
    from dosewise.ledger.open import default_db, open_store

    url = db or default_db()
    if "://" not in url and not Path(url).is_file():
        return None
    return open_store(url, readonly=True)


@ledger_app.command("verify")
def verify(
    db: DbOption = None,
    checkpoint: CheckpointOption = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="An empty or missing ledger passes.")] = False,
) -> None:
    """Walk the ledger: hash chain, signatures, checkpoints held and stored. Never writes.

    Exit code 0: every event verified, every signature is valid, every checkpoint given (and every one stored in the ledger) is a prefix of the current tree.

    Exit code 1: tampering found (an edited, deleted, inserted or reordered event, a broken link, a forged event in the name of an identity with a registered key, a ledger shorter than or forked from a checkpoint), a round whose events do not balance (an offer made twice, open doses without offers), or the ledger is empty or missing (unless --allow-empty), or cannot be read.

    Exit code 2: bad arguments (e.g. a checkpoint file that cannot be read), or a file that cannot be opened as a database at all.
    """  # noqa: E501
    from dosewise.app import audit_rounds, remember_head
    from dosewise.ledger import audit, checkpoints
    from dosewise.ledger.open import default_db

    held = [(str(path), checkpoints.read_file(path)) for path in checkpoint or []]
    store = _open_readonly(db)
    if store is None:
        if allow_empty and not held:
            console.print("no ledger here (allowed by --allow-empty)")
            return
        console.print(f"[bold red]FAILED[/]: no ledger at {safe(db or default_db())}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    try:
        report = audit.verify_ledger(store, held, allow_empty=allow_empty)
        rounds = audit_rounds(store) if report.ok else {}
    finally:
        store.close()
    console.print(f"events checked: {report.chain.checked}, signatures checked: {report.signatures_checked}")
    console.print(f"head: seq {report.chain.head_seq or 0}, hash {report.chain.head_hash or '-'}", soft_wrap=True)
    console.print(f"tree: size {report.tree_size}, root {report.root_hash or '-'}", soft_wrap=True)
    for c in report.checkpoints:
        mark = "[green]ok[/]" if c.ok else "[bold red]FAILED[/]"
        witnessed = f", cosigned by {safe(', '.join(c.witnesses))}" if c.witnesses else ""
        console.print(f"checkpoint {safe(c.source)} (size {c.tree_size}{witnessed}): {mark}", highlight=False,
                      soft_wrap=True)
    broken = {rid: problems for rid, problems in rounds.items() if problems}
    for rid, problems in broken.items():
        console.print(f"[bold red]ROUND {safe(rid)} DOES NOT BALANCE[/]: {safe('; '.join(problems))}",
                      highlight=False, soft_wrap=True)
    if report.ok and not broken:
        remember_head(db, report.chain.head_seq, report.chain.head_hash)
        console.print("[bold green]OK[/]: the ledger verifies" + (" (empty)" if report.empty else "")
                      + (f"; every dose of {len(rounds)} round(s) is accounted for" if rounds else ""))
        return
    if not report.chain.ok:
        console.print(f"[bold red]TAMPERED at seq {report.chain.first_bad_seq}[/]: {safe(report.chain.problem)}",
                      highlight=False, soft_wrap=True)
    for problem in (p for p in report.problems() if not p.startswith("hash chain broken")):
        console.print(f"[bold red]TAMPERED[/]: {safe(problem)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@ledger_app.command("checkpoint")
def checkpoint_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="Also write the checkpoint to this file.")] = None,
    key: Annotated[Path | None, typer.Option("--key", help=f"The ledger's private key file (default: "
                                              f"${LEDGER_KEY_ENV}).", show_default=False)] = None,
    witness_key: Annotated[Path | None, typer.Option("--witness-key", help="Cosign with this witness key.")] = None,
    witness_name: Annotated[str, typer.Option("--witness-name", help="The witness's name.")] = "witness",
    append_to: Annotated[Path | None, typer.Option("--append-to", help="Append to this JSON Lines checkpoint log "
                                                   "(e.g. a file in a git repository).")] = None,
    db: DbOption = None,
) -> None:
    """Sign and record a checkpoint (tree size, root hash, time) of the whole ledger."""
    from dosewise.ledger import checkpoints
    from dosewise.ledger.keys import ledger_key_path, load_private
    from dosewise.ledger.open import existing_db, open_store

    private = load_private(ledger_key_path(key))
    store = open_store(existing_db(db))
    try:
        cp = checkpoints.checkpoint(store, private)
    finally:
        store.close()
    if witness_key is not None:
        cp = cp.cosign(witness_key, witness_name)
    if out is not None:
        checkpoints.write_file(cp, out)
    if append_to is not None:
        checkpoints.append_jsonl(cp, append_to)
    console.print(f"checkpoint: size {cp.tree_size}, root {cp.root_hash}, time {cp.time}", soft_wrap=True)
    console.print(f"signed by the ledger key {cp.log_id}" + (f", cosigned by {witness_name}" if witness_key else "")
                  + (f"; written to {out}" if out else ""), highlight=False, soft_wrap=True)


@ledger_app.command("cosign")
def cosign(
    checkpoint_file: Annotated[Path, typer.Argument(help="The checkpoint to cosign (rewritten with the cosignature "
                                                    "unless --out).", show_default=False)],
    key: Annotated[Path, typer.Option("--key", help="The witness's private key file.")],
    name: Annotated[str, typer.Option("--name", help="The witness's name.")] = "witness",
    log: Annotated[Path | None, typer.Option("--log", help="The witness's own JSON Lines log of cosigned "
                                             "checkpoints: the new one must be consistent with its last entry, "
                                             "and is appended to it.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the cosigned checkpoint.")] = None,
    db: DbOption = None,
) -> None:
    """Cosign a checkpoint as a witness, after checking it against the ledger and the witness's log.

    The ledger's signature must verify; the checkpoint's root must be the root of the ledger's first tree_size events; and, with --log, the consistency proof from the last checkpoint the witness cosigned to this one must verify. A witness never cosigns two views of the log that fork.
    """  # noqa: E501
    from dosewise.errors import LedgerError
    from dosewise.ledger import checkpoints, merkle, tree
    from dosewise.ledger.open import default_db

    cp = checkpoints.read_file(checkpoint_file)
    problems = cp.problems()
    previous = checkpoints.read_jsonl(log) if log is not None else []
    store = _open_readonly(db)
    if store is None:
        raise LedgerError(f"no ledger at {db or default_db()}")
    try:
        with tree.open_view(store) as view:
            if cp.tree_size > view.size():
                problems.append(f"the ledger holds fewer events than the checkpoint's {cp.tree_size}")
            elif view.root(cp.tree_size) != cp.root:
                problems.append("the checkpoint's root is not the root of the ledger's events")
            elif previous:
                last = previous[-1]
                lo, hi = sorted((last.tree_size, cp.tree_size))
                roots = {last.tree_size: last.root, cp.tree_size: cp.root}
                try:
                    merkle.verify_consistency(lo, hi, roots[lo], roots[hi], view.consistency(lo, hi))
                except merkle.ProofError as exc:
                    problems.append(f"not consistent with the last checkpoint this witness cosigned: {exc}")
    finally:
        store.close()
    if problems:
        for p in problems:
            console.print(f"[bold red]REFUSED[/]: {safe(p)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    signed = cp.cosign(key, name)
    checkpoints.write_file(signed, out or checkpoint_file)
    if log is not None:
        checkpoints.append_jsonl(signed, log)
    console.print(f"cosigned checkpoint of size {cp.tree_size} as {safe(name)}", highlight=False)


@ledger_app.command("export-checkpoints")
def export_checkpoints(
    out: Annotated[Path, typer.Option("--out", help="JSON Lines file to append to (one checkpoint per line).")],
    db: DbOption = None,
) -> None:
    """Append every stored checkpoint not yet in OUT (an append-only, git-friendly log)."""
    from dosewise.errors import LedgerError
    from dosewise.ledger import checkpoints
    from dosewise.ledger.open import default_db

    store = _open_readonly(db)
    if store is None:
        raise LedgerError(f"no ledger at {db or default_db()}")
    try:
        n = checkpoints.export_jsonl(store, out)
    finally:
        store.close()
    console.print(f"appended {n} checkpoints to {out}")


@ledger_app.command("prove")
def prove(
    event: Annotated[str, typer.Argument(help="The event's seq or event_id.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Where to write the receipt (JSON).")],
    checkpoint: CheckpointOption = None,
    db: DbOption = None,
) -> None:
    """Write a receipt: the event, its inclusion proof and the signed checkpoint it is proven against.

    With --checkpoint, the receipt also carries consistency proofs between that checkpoint and the receipt's, so `ledger verify-receipt` can check it against the checkpoint you hold, offline.
    """  # noqa: E501
    from dosewise.errors import LedgerError
    from dosewise.ledger import audit, checkpoints
    from dosewise.ledger.open import default_db

    held = [checkpoints.read_file(p) for p in checkpoint or []]
    store = _open_readonly(db)
    if store is None:
        raise LedgerError(f"no ledger at {db or default_db()}")
    try:
        receipt = audit.make_receipt(store, event, held=held)
    finally:
        store.close()
    out.write_text(json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"receipt for event seq {receipt['event']['seq']} in the tree of size {receipt['tree_size']} "
                  f"written to {safe(out)}", highlight=False, soft_wrap=True)


@ledger_app.command("verify-receipt")
def verify_receipt(
    receipt: Annotated[Path, typer.Argument(help="The receipt file.", show_default=False)],
    checkpoint: CheckpointOption = None,
) -> None:
    """Check a receipt offline (no database): the event's hash and signature, its inclusion proof, the checkpoint's signatures, and consistency with every checkpoint you hold. Exit 1 if anything fails.

    Without --checkpoint only the receipt's agreement with itself is checked (exit 0, said as such): it proves the event is in the log of the ledger key the receipt names, not that this is the log you deal with.
    """  # noqa: E501
    from dosewise.ledger import audit, checkpoints

    held = [checkpoints.read_file(p) for p in checkpoint or []]
    data = audit.read_receipt(receipt)
    problems = audit.verify_receipt(data, held)
    if problems:
        for p in problems:
            console.print(f"[bold red]FAILED[/]: {safe(p)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    ev = data["event"]
    what = f"event seq {ev['seq']} ({safe(ev['type'])}, actor {safe(ev['actor'])})"
    log_key = data["checkpoint"]["checkpoint"]["log_id"]
    if held:
        console.print(f"[bold green]OK[/]: {what} is in the log of size {data['tree_size']} signed by ledger key "
                      f"{log_key}, consistent with the {len(held)} checkpoint(s) you hold", highlight=False,
                      soft_wrap=True)
        return
    # Without a checkpoint the party holds, a receipt only shows that it agrees with itself: anyone
    # with a key of their own can make such a receipt for a log of their own.
    console.print(f"[bold yellow]CONSISTENT IN ITSELF[/]: {what} is in the tree of size {data['tree_size']} of the "
                  f"checkpoint the receipt carries, signed by ledger key {log_key}; nothing ties that key or log to "
                  "one you hold: give --checkpoint FILE (a checkpoint you took or a witness cosigned) to check it "
                  "against your log", highlight=False, soft_wrap=True)


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


keys_app = typer.Typer(name="keys", help="Ed25519 keys for the parties and for the ledger (gen, register); API keys "
                                        "for the service (create, list, revoke).", no_args_is_help=True)


@keys_app.command("gen")
def keys_gen(out: Annotated[Path, typer.Option("--out", help="The private key file to create (mode 0600; OUT.pub "
                                               "gets the public key).")]) -> None:
    """Make a key pair for a party (or for the ledger); prints the public key, never the private one."""
    from dosewise.ledger import keys

    pub = keys.generate(out)
    console.print(f"public key: {pub.b64}", highlight=False, soft_wrap=True)
    console.print(f"key id: {pub.key_id}", highlight=False)
    console.print(f"private key written to {out} (mode 0600); keep it there", highlight=False, soft_wrap=True)


@keys_app.command("register")
def keys_register(
    key: Annotated[Path, typer.Argument(help="The key to register: the party's private key file (first key), or, "
                                        "with --sign-with, the new private key file or its .pub.",
                                        show_default=False)],
    identity: Annotated[str, typer.Option("--identity", help="Who the key belongs to, as the ledger names it in "
                                          "`actor` (e.g. PRK).")],
    role: Annotated[str, typer.Option("--role", help="participant, donor, coordinator, reviewer, observer or ledger.")],
    sign_with: Annotated[Path | None, typer.Option("--sign-with", help="Rotation: IDENTITY's current private key "
                                                   "file, which signs the registration of the new key.",
                                                   show_default=False)] = None,
    db: DbOption = None,
) -> None:
    """Record a key.registered event: from now on every event in IDENTITY's name must be signed by this key.

    The first key of an identity signs its own registration. A new key for an identity that already has one (rotation) must be signed by the current key: give --sign-with CURRENT_KEYFILE. Anything else is refused and nothing is recorded.
    """  # noqa: E501
    from dosewise.errors import InputError
    from dosewise.ledger import signing
    from dosewise.ledger.gate import SignatureGate
    from dosewise.ledger.keys import read_public
    from dosewise.ledger.open import existing_db, open_store

    if role == "participant":
        from dosewise.reference.countries import validate_iso3

        identity = validate_iso3(identity, field="--identity")
    elif role not in signing.ROLES:
        raise InputError(f"role must be one of {', '.join(signing.ROLES)}", field="--role", value=role)
    if sign_with is None:
        signer = signing.Signer.from_file(key)
        new_key = signer.public
        event = signing.registration(signer, identity, role)
    else:
        signer = signing.Signer.from_file(sign_with)
        new_key = read_public(key)
        if new_key.key_id == signer.public.key_id:
            raise InputError("the new key is the key that signs its registration; give the new key as KEY and "
                             "the current one with --sign-with", file=str(key))
        event = signing.registration(signer, identity, role, new_key=new_key)
    store = open_store(existing_db(db))
    try:
        recorded = SignatureGate(store).append_one(event)
    finally:
        store.close()
    how = f", signed by the current key {signer.public.key_id}" if sign_with is not None else ""
    console.print(f"key {new_key.key_id} registered for {safe(identity)} ({safe(role)}) at seq {recorded.seq}{how}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``ledger`` and ``keys`` command groups to the main app."""
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(keys_app, name="keys")
