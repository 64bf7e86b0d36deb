"""SQL store on SQLAlchemy 2 Core: SQLite (default, a file) and PostgreSQL (psycopg 3).

* Schema by Alembic (``ledger/migrations``), applied on open; a database already at
  the head revision is not migrated again.
* Append-only enforced by the database: triggers refuse UPDATE and DELETE (and
  TRUNCATE on PostgreSQL).
* Appends are serialised so the chain never forks: SQLite takes the write lock at
  ``BEGIN IMMEDIATE``; PostgreSQL takes ``LOCK TABLE ledger_events IN SHARE ROW
  EXCLUSIVE MODE`` (conflicts with itself and with inserts, not with reads). The
  head is read inside the lock, then the batch is inserted; commit releases it.
* SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss)
  and ``busy_timeout`` so concurrent writers wait instead of failing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc

from dosewise.errors import ConflictError, InputError, LedgerError, mask_secrets
from dosewise.ledger.events import Event, NewEvent, VerifyReport, verify_rows
from dosewise.ledger.export import export_events
from dosewise.ledger.schema import EVENTS, HEAD_REVISION, VERSION_TABLE
from dosewise.ledger.store import (
    ExportFormat,
    Precondition,
    all_replays,
    head_of,
    now_text,
    plan_append,
    resolve,
)

__all__ = ["SQLStore", "normalise_url"]

_PAGE = 10_000
_IN_CHUNK = 500
_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK = 0x646F7365  # advisory lock key for migrations on PostgreSQL ("dose")
_COLS = list(EVENTS.c)
_NAMES = ", ".join(c.name for c in _COLS)
_INSERT = f"INSERT INTO ledger_events ({_NAMES}) VALUES ({{marks}})"
_RAW_PAGE = f"SELECT {_NAMES} FROM ledger_events WHERE seq > {{mark}} ORDER BY seq LIMIT {{limit}}"


def normalise_url(url: str) -> sa.URL:
    """A plain path → ``sqlite:///<abs path>``; ``postgresql://`` → the psycopg 3 driver."""
    if "://" not in url:
        if url in ("", ":memory:"):
            raise InputError("use 'memory' for an in-memory ledger, or a file path", field="db", value=url)
        return sa.URL.create("sqlite", database=str(Path(url).expanduser().resolve()))
    try:
        parsed = sa.make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise InputError(f"not a database URL: {mask_secrets(str(exc))}", field="db", value=mask_secrets(url)) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InputError("use 'memory' for an in-memory ledger, or a file path", field="db", value=url)
        return parsed
    raise InputError("the ledger supports SQLite and PostgreSQL URLs", field="db", value=mask_secrets(url))


def _sqlite_engine(url: sa.URL, readonly: bool = False) -> sa.Engine:
    if readonly:  # SQLite's own read-only mode: the file is opened O_RDONLY, never written
        path = Path(url.database or "")
        url = sa.URL.create("sqlite", database=f"file:{path.as_posix()}?mode=ro", query={"uri": "true"})
    engine = sa.create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})

    @sa_event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if readonly:
            cur.execute("PRAGMA query_only = ON")
            cur.close()
            return
        # Switching a new file to WAL needs an exclusive lock and SQLite does not call the busy
        # handler for it: when two processes open a fresh ledger at once, one gets "database is
        # locked" at once. Retry until the busy timeout instead.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                cur.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @sa_event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("dosewise_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _marks(conn: sa.Connection, sql: str) -> str:
    """``sql`` (written with ``?`` marks) in the driver's own parameter style."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def _query(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """The rows (plain tuples) of a SQL text written with ``?`` marks, through the driver's own cursor.

    The reads of the answer path (the head, a round's new events, a batch's idempotency keys and
    unique slots) build no statement object and no result metadata per call, which cost more than
    the query itself; as through SQLAlchemy, a driver error is raised as SQLAlchemy's exception of
    its kind and a lost connection is invalidated, so the pool does not hand it out again.
    """
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    text = _marks(conn, sql)
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(text, tuple(params))
        return list(cursor.fetchall())
    except conn.dialect.loaded_dbapi.Error as exc:
        if conn.dialect.is_disconnect(exc, dbapi_conn, cursor):
            conn.invalidate(exc)
        raise sa_exc.DBAPIError.instance(text, params, exc, conn.dialect.loaded_dbapi.Error,
                                         dialect=conn.dialect) from exc
    finally:
        cursor.close()


_HEAD = f"SELECT {_NAMES} FROM ledger_events ORDER BY seq DESC LIMIT 1"


_IDLE_PING_S = 1.0
"""A pooled connection idle for longer than this is pinged before it is lent again."""


def _server_engine(url: sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine for a database server whose pool pings a connection before lending it only when
    it has sat idle for more than :data:`_IDLE_PING_S`.

    A connection that went stale while idle (a restarted server, a dropped TCP session) is found
    by the ping and replaced before any statement is sent, as ``pool_pre_ping`` would; one handed
    back a moment ago is lent again without a round trip (the answer path borrows a connection
    twice per answer, so pinging each time would cost two round trips per answer). A connection
    that fails during use is invalidated where the failure is seen (see :func:`_query`)."""
    engine = sa.create_engine(url, **kwargs)

    @sa_event.listens_for(engine.pool, "checkin")
    def _returned(dbapi_conn: Any, record: Any) -> None:
        record.info["dosewise_idle_since"] = time.monotonic()

    @sa_event.listens_for(engine.pool, "checkout")
    def _lent(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("dosewise_idle_since")
        if since is None or time.monotonic() - since <= _IDLE_PING_S:
            return
        try:
            if not engine.dialect.do_ping(dbapi_conn):
                raise sa_exc.DisconnectionError("the connection did not answer a ping")
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa_exc.DisconnectionError(f"the connection did not answer a ping: {exc}") from exc

    return engine


class _SQLView:
    """Reads through one connection (the locked one, during an append)."""

    def __init__(self, conn: sa.Connection, *, locked: bool = False) -> None:
        self._conn = conn
        self._locked = locked
        self._head: tuple[Event | None] | None = None

    def head(self) -> Event | None:
        if self._head is not None:  # inside the write lock the head stays put: read it once
            return self._head[0]
        rows = _query(self._conn, _HEAD)
        ev = Event.from_row(rows[0]) if rows else None
        if self._locked:
            self._head = (ev,)
        return ev

    def read(self, after_seq: int = 0, *, round_id: str | None = None, offer_id: str | None = None,
             types: Sequence[str] | None = None) -> Iterator[Event]:
        for row in _pages(lambda sql, params: _query(self._conn, sql, params), after_seq, round_id, offer_id, types):
            yield Event.from_row(row)

    def find_slot(self, unique_slot: str) -> Event | None:
        rows = _query(self._conn, f"SELECT {_NAMES} FROM ledger_events WHERE unique_slot = ?", (unique_slot,))
        return Event.from_row(rows[0]) if rows else None

    def prefetch(self, keys: set[str], slots: set[str]) -> tuple[dict[str, Event], dict[str, Event]]:
        """What an append reads under the lock, in one round trip: the head (kept for :meth:`head`) and
        the stored events holding any of ``keys`` (idempotency keys) or ``slots`` (unique slots)."""
        if len(keys) + len(slots) > _IN_CHUNK:
            self.head()
            return (self.lookup(EVENTS.c.idempotency_key, keys) if keys else {},
                    self.lookup(EVENTS.c.unique_slot, slots) if slots else {})
        found = [f"idempotency_key IN ({', '.join('?' * len(keys))})"] if keys else []
        found += [f"unique_slot IN ({', '.join('?' * len(slots))})"] if slots else []
        sql = f"SELECT 0 AS part, {_NAMES} FROM ({_HEAD}) AS head"
        if found:
            sql += f" UNION ALL SELECT 1 AS part, {_NAMES} FROM ledger_events WHERE {' OR '.join(found)}"
        head: Event | None = None
        by_key: dict[str, Event] = {}
        by_slot: dict[str, Event] = {}
        for row in _query(self._conn, sql, [*sorted(keys), *sorted(slots)]):
            ev = Event.from_row(row[1:])
            if row[0] == 0:
                head = ev
                continue
            if ev.idempotency_key in keys:
                by_key[ev.idempotency_key] = ev  # type: ignore[index]
            if ev.unique_slot in slots:
                by_slot[ev.unique_slot] = ev  # type: ignore[index]
        if self._locked:
            self._head = (head,)
        return by_key, by_slot

    def lookup(self, column: sa.Column[Any], values: set[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        ordered = sorted(values)
        for i in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[i:i + _IN_CHUNK]
            sql = f"SELECT {_NAMES} FROM ledger_events WHERE {column.name} IN ({', '.join('?' * len(chunk))})"
            for row in _query(self._conn, sql, chunk):
                ev = Event.from_row(row)
                found[getattr(ev, column.key)] = ev
        return found


def _pages(fetch: Any, after_seq: int, round_id: str | None, offer_id: str | None,
           types: Sequence[str] | None, page: int = _PAGE) -> Iterator[Sequence[Any]]:
    """Keyset pagination by seq: streams without holding a cursor or transaction open.

    ``fetch(sql, params)`` returns the rows of a SQL text written with ``?`` marks."""
    if types is not None and not types:
        return
    where = "seq > ?"
    filters: list[Any] = []
    if round_id is not None:
        where += " AND round_id = ?"
        filters.append(round_id)
    if offer_id is not None:
        where += " AND offer_id = ?"
        filters.append(offer_id)
    if types is not None:
        where += f" AND type IN ({', '.join('?' * len(types))})"
        filters += list(types)
    sql = f"SELECT {_NAMES} FROM ledger_events WHERE {where} ORDER BY seq LIMIT {int(page)}"
    last = after_seq
    while True:
        rows = fetch(sql, [last, *filters])
        yield from rows
        if len(rows) < page:
            return
        last = int(rows[-1][0])


class SQLStore:
    """The ledger in SQLite or PostgreSQL; see the module docstring."""

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        """``readonly=True``: open without creating, migrating or writing anything (SQLite
        ``mode=ro``, PostgreSQL read-only transactions); appends then fail."""
        self.url = normalise_url(url)
        self.dialect = self.url.get_backend_name()
        self.readonly = readonly
        try:
            if self.dialect == "sqlite":
                path = Path(self.url.database or "")
                if readonly:
                    if not path.is_file():
                        raise LedgerError(f"no ledger at {path}")
                elif not path.parent.is_dir():
                    raise LedgerError(f"cannot create the ledger: the folder {path.parent} does not exist")
                self.engine = _sqlite_engine(self.url, readonly)
            elif readonly:
                self.engine = _server_engine(self.url, connect_args={
                    "options": "-c default_transaction_read_only=on"})
            else:
                self.engine = _server_engine(self.url)
            if readonly:
                with self.engine.connect() as conn:
                    self.revision = self._current_revision(conn)
                    conn.rollback()
            else:
                self._migrate()
                self.revision = HEAD_REVISION
        except sa_exc.DatabaseError as exc:
            raise LedgerError(f"cannot open the ledger at {self.url.render_as_string()}: {exc.orig}") from exc

    # -- schema ---------------------------------------------------------------------------------
    def _current_revision(self, conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()  # type: ignore[no-any-return]

    def _migrate(self) -> None:
        with self.engine.connect() as conn:
            current = self._current_revision(conn)
            conn.rollback()
        if current == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.connect().execution_options(dosewise_write=True) as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            cfg.attributes["connection"] = conn
            try:
                command.upgrade(cfg, "head")
            except CommandError as exc:
                raise LedgerError(f"the ledger's schema version {current!r} is not one this version of dosewise "
                                  f"knows (a newer dosewise, or an edited version table): {exc}") from None

    # -- writing --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(dosewise_write=True) as conn, conn.begin():
            if self.dialect == "postgresql":
                conn.exec_driver_sql("LOCK TABLE ledger_events IN SHARE ROW EXCLUSIVE MODE")
            yield conn

    def append(self, events: Sequence[NewEvent], *, precondition: Precondition | None = None) -> list[Event]:
        events = list(events)
        if not events:
            return []
        keys = {e.idempotency_key for e in events if e.idempotency_key}
        slots = {e.unique_slot for e in events if e.unique_slot}
        try:
            with self._locked() as conn:
                view = _SQLView(conn, locked=True)
                by_key, by_slot = view.prefetch(keys, slots)
                if all_replays(events, by_key):
                    return [by_key[e.idempotency_key] for e in events]  # type: ignore[index]
                if precondition is not None:
                    precondition(view)
                results, rows = plan_append(events, *head_of(view.head()), by_key, by_slot, now_text())
                if rows:
                    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                    conn.exec_driver_sql(_INSERT.format(marks=", ".join([mark] * len(_COLS))), rows)
        except sa_exc.IntegrityError as exc:
            # Only reachable by a writer that bypassed the lock (the checks above run inside it).
            raise ConflictError(
                f"the ledger refused the batch (a unique slot or key is taken): {exc.orig}"
            ) from exc
        except sa_exc.OperationalError as exc:
            raise LedgerError(f"cannot write to the ledger: {exc.orig}") from exc
        return resolve(results, rows)

    def append_one(self, event: NewEvent, *, precondition: Precondition | None = None) -> Event:
        return self.append([event], precondition=precondition)[0]

    # -- reading --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """A connection for reads outside an append. On PostgreSQL it is in autocommit while lent:
        each read is one statement (one snapshot) either way, and it saves the round trips of
        ``BEGIN`` and of the ``ROLLBACK`` when the connection goes back to the pool."""
        with self.engine.connect() as conn:
            if self.dialect != "postgresql":
                yield conn
                return
            dbapi_conn: Any = conn.connection.dbapi_connection
            dbapi_conn.autocommit = True
            try:
                yield conn
            finally:
                if not dbapi_conn.closed:
                    dbapi_conn.autocommit = False

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any]:
        with self._reading() as conn:
            return _query(conn, sql, params)

    def head(self) -> Event | None:
        with self._reading() as conn:
            return _SQLView(conn).head()

    def read(self, after_seq: int = 0, *, round_id: str | None = None, offer_id: str | None = None,
             types: Sequence[str] | None = None) -> Iterator[Event]:
        for row in _pages(self._fetch, after_seq, round_id, offer_id, types):
            yield Event.from_row(row)

    def rows(self, after_seq: int = 0, page: int = 50_000) -> Iterator[Sequence[Any]]:
        """Stored rows as they are (payload as canonical JSON text), in seq order.

        Fetched through the driver's own cursor in keyset pages (plain tuples: the
        fastest path, used by :meth:`verify`).
        """
        last = after_seq
        while True:
            with self.engine.connect() as conn:
                mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(_RAW_PAGE.format(mark=mark, limit=int(page)), (last,))
                    batch = cursor.fetchall()
                finally:
                    cursor.close()
                conn.rollback()
            yield from batch
            if len(batch) < page:
                return
            last = int(batch[-1][0])

    def find_slot(self, unique_slot: str) -> Event | None:
        with self._reading() as conn:
            return _SQLView(conn).find_slot(unique_slot)

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        return verify_rows(self.rows(), expected_head=expected_head)

    def export(self, path: str | Path, format: ExportFormat = "jsonl") -> int:
        return export_events(self.read(), path, format)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
