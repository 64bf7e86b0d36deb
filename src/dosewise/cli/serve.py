"""``dosewise serve`` (the REST service on uvicorn) and ``dosewise keys`` (its API keys)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dosewise.cli._common import DbOption, console, safe
from dosewise.cli.ledger import keys_app as ledger_keys_app
from dosewise.vocabulary import ROLES

__all__ = ["register"]

keys_app = ledger_keys_app
"""API keys join the ``keys`` group that also holds the parties' signing keys (``keys gen``, ``keys register``)."""


def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1; "
                                                  "$DOSEWISE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000; $DOSEWISE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default 1; $DOSEWISE_WORKERS).")] = None,
) -> None:
    """Serve the ledger over HTTP (FastAPI on uvicorn): rounds, offers, the ledger and an event
    stream, each caller acting in the role of its API key. OpenAPI at /openapi.json, docs at /docs.
    Other settings come from DOSEWISE_* variables (DOSEWISE_WHO, DOSEWISE_PAGE_LIMIT, …)."""
    import os

    import uvicorn

    from dosewise.app import Desk
    from dosewise.service.settings import Settings

    overrides = {k: v for k, v in {"db": db, "host": host, "port": port, "workers": workers}.items()
                 if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    Desk.open(settings.db, create=True).close()  # create and migrate once, before the workers start
    os.environ.update({f"DOSEWISE_{k.upper()}": str(v) for k, v in overrides.items()})
    console.print(f"dosewise serving on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run("dosewise.service.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, log_level=settings.log_level)


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")],
    participant: Annotated[str | None, typer.Option("--participant", help="Participant code (ISO3) "
                                                                         "a participant key answers for.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Who holds the key (the two-person rule compares "
                                                            "names).")] = None,
    db: DbOption = None,
) -> None:
    """Create an API key. The key is printed once and stored only as a hash."""
    from dosewise.app import Desk

    with Desk.open(db, create=True, actor="cli") as desk:
        ident, token = desk.create_key(role, name=name, participant=participant, by="cli")
    console.print(f"created key {ident.key_id} for {safe(ident.name)} ({ident.role}"
                  + (f", participant {ident.participant}" if ident.participant else "") + ")", highlight=False)
    console.print("the key (shown once, keep it secret):", highlight=False)
    print(token)


@keys_app.command("list")
def list_(db: DbOption = None) -> None:
    """Every key: id, name, role, participant, created, revoked (never the secret)."""
    from dosewise.app import Desk

    with Desk.open(db) as desk:
        keys = desk.keys.list()
    table = Table(title=f"API keys ({len(keys)})")
    for col in ("key id", "name", "role", "participant", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.key_id, safe(k.name), k.role, k.participant or "", k.created_at, k.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="Key id (from `dosewise keys list`).")],
           db: DbOption = None) -> None:
    """Revoke a key: a running server refuses it within a second (the one that revokes it, at once)."""
    from dosewise.app import Desk

    with Desk.open(db) as desk:
        ident = desk.revoke_key(key_id, by="cli")
    console.print(f"revoked key {ident.key_id} ({safe(ident.name)}, {ident.role}) at {ident.revoked_at}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
