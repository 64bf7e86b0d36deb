"""SQL stores: append-only enforced by the database, tampering caught, migrations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from dosewise.errors import InputError
from dosewise.ledger import NewEvent, Store, open_store
from dosewise.ledger.schema import HEAD_REVISION, METADATA, VERSION_TABLE
from dosewise.ledger.sql import SQLStore, normalise_url


def _fill(store: Store, n: int = 8) -> None:
    store.append([NewEvent(type="offer.made", actor="secretariat", round_id="R1", offer_id=f"O{i}",
                           participant="PRK", payload={"doses": 1_992_000 - i}) for i in range(n)])


def _engine(store: Store) -> sa.Engine:
    assert isinstance(store, SQLStore)
    return store.engine


def _unlock(store: Store) -> str:
    """SQL a database owner runs to switch the append-only triggers off."""
    if _engine(store).dialect.name == "sqlite":
        return "DROP TRIGGER ledger_events_no_update; DROP TRIGGER ledger_events_no_delete"
    return "ALTER TABLE ledger_events DISABLE TRIGGER USER"


def _owner(store: Store, *statements: str) -> None:
    with _engine(store).connect() as conn, conn.begin():
        for stmt in statements:
            for part in stmt.split("; "):
                conn.exec_driver_sql(part)


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_events SET payload = '{\"doses\":9999999}' WHERE seq = 3",
    "UPDATE ledger_events SET seq = seq + 100",
    "DELETE FROM ledger_events WHERE seq = 8",
    "DELETE FROM ledger_events",
])
def test_database_refuses_update_and_delete(sql_store: Store, statement: str) -> None:
    _fill(sql_store)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        _owner(sql_store, statement)
    assert [e.seq for e in sql_store.read()] == list(range(1, 9))
    assert sql_store.verify().ok


@pytest.mark.postgres
def test_postgres_refuses_truncate(fresh_pg_url: str) -> None:
    store = open_store(fresh_pg_url)
    _fill(store)
    with pytest.raises(sa.exc.DBAPIError, match="append-only: TRUNCATE refused"):
        _owner(store, "TRUNCATE ledger_events")
    assert store.verify().checked == 8
    store.close()


def test_owner_edit_is_caught_by_verify(sql_store: Store) -> None:
    _fill(sql_store)
    _owner(sql_store, _unlock(sql_store),
           "UPDATE ledger_events SET payload = '{\"doses\":2992000}' WHERE seq = 5")
    report = sql_store.verify()
    assert not report.ok and report.first_bad_seq == 5 and report.checked == 4
    assert "edited" in (report.problem or "")


def test_owner_delete_is_caught_by_verify(sql_store: Store) -> None:
    _fill(sql_store)
    _owner(sql_store, _unlock(sql_store), "DELETE FROM ledger_events WHERE seq = 3")
    report = sql_store.verify()
    assert not report.ok and report.first_bad_seq == 3 and "missing" in (report.problem or "")


def test_owner_reorder_is_caught_by_verify(sql_store: Store) -> None:
    _fill(sql_store)
    _owner(sql_store, _unlock(sql_store),
           "UPDATE ledger_events SET seq = -1 WHERE seq = 6",
           "UPDATE ledger_events SET seq = 6 WHERE seq = 2",
           "UPDATE ledger_events SET seq = 2 WHERE seq = -1")
    report = sql_store.verify()
    assert not report.ok and report.first_bad_seq == 2


def test_migrations_apply_once_and_match_the_schema(sql_url: str) -> None:
    store = open_store(sql_url)
    engine = _engine(store)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars().all()
        assert versions == [HEAD_REVISION]
        assert compare_metadata(  # the migration builds exactly the table the store uses
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), METADATA) == []
        triggers = {"sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
                    "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"}[engine.dialect.name]
        names = set(conn.exec_driver_sql(triggers).scalars())
    assert {"ledger_events_no_update", "ledger_events_no_delete"} <= names
    _fill(store, 3)
    store.close()
    # running the migrations again (as alembic would) changes nothing
    cfg = Config()
    cfg.set_main_option("script_location", "dosewise.ledger:migrations")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    again = open_store(sql_url)
    assert [e.seq for e in again.read()] == [1, 2, 3] and again.verify().ok
    again.close()


def test_sqlite_uses_wal_and_busy_timeout(tmp_path) -> None:
    store = open_store(str(tmp_path / "x.db"))
    with _engine(store).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


@pytest.mark.parametrize("url, expected", [
    ("ledger.db", "sqlite"),
    ("sqlite:////tmp/x.db", "sqlite"),
    ("postgresql://u@h/db", "postgresql+psycopg"),
    ("postgres://u@h/db", "postgresql+psycopg"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
])
def test_url_forms(url: str, expected: str) -> None:
    assert normalise_url(url).drivername == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://", ":memory:"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError):
        normalise_url(url)


def test_raw_sql_fixture_is_owner(raw_sql: Callable[[str], None], sql_url: str) -> None:
    store = open_store(sql_url)
    _fill(store, 2)
    with pytest.raises(sa.exc.DBAPIError):
        raw_sql("DELETE FROM ledger_events")
    store.close()
