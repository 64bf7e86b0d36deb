"""The SQL store's hot reads (plain SQL through the driver's cursor): the same events as the stored
rows, driver errors raised as SQLAlchemy's, and pooled connections handed back as they were lent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dosewise.errors import ConflictError
from dosewise.ledger import NewEvent
from dosewise.ledger.sql import _IN_CHUNK, SQLStore


def _events(n: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent(type="offer.made" if i % 3 else "lot.registered", actor="secretariat",
                     round_id=f"R{i % 2}", offer_id=f"O{i}", participant="PRK", payload={"doses": 1000 + i,
                     "note": "«déjà»"}, idempotency_key=f"k{i}", unique_slot=f"s{i}")
            for i in range(start, start + n)]


def test_hot_reads_return_what_is_stored(sql_url: str) -> None:
    store = SQLStore(sql_url)
    try:
        assert store.head() is None and list(store.read()) == []
        stored = store.append(_events(9))
        every = list(store.read())
        assert every == stored and store.head() == stored[-1]
        assert list(store.read(3, round_id="R1")) == [e for e in stored if e.seq > 3 and e.round_id == "R1"]
        assert list(store.read(offer_id="O4")) == [stored[4]]
        assert list(store.read(types=["lot.registered"])) == [e for e in stored if e.type == "lot.registered"]
        assert list(store.read(types=[])) == []
        assert store.find_slot("s5") == stored[5] and store.find_slot("nope") is None
        # a retried batch returns what was recorded; a batch with more keys and slots than one query
        # takes is looked up in parts, with the same outcome
        assert store.append(_events(3, 2)) == stored[2:5]
        big = store.append(_events(2 * _IN_CHUNK // 2 + 10, 9))
        assert [e.seq for e in big] == list(range(10, 10 + len(big)))
        assert store.append(_events(2 * _IN_CHUNK // 2 + 10, 9)) == big
        assert store.verify().ok
    finally:
        store.close()


def test_a_failed_read_raises_sqlalchemys_error_and_lends_the_connection_back_as_it_was(sql_url: str) -> None:
    store = SQLStore(sql_url)
    try:
        store.append(_events(2))
        with pytest.raises(sa.exc.DBAPIError):
            store._fetch("SELECT no_such_column FROM ledger_events WHERE seq > ?", [0])
        assert store.head() is not None and store.head().seq == 2  # type: ignore[union-attr]
        if store.dialect == "postgresql":
            with store.engine.connect() as conn:
                assert conn.connection.dbapi_connection.autocommit is False  # type: ignore[union-attr]
        # a write after the reads is still one transaction: all of a refused batch or nothing
        with pytest.raises(ConflictError):
            store.append([*_events(1, 50), NewEvent(type="offer.made", actor="x", payload={}, unique_slot="s0",
                                                    idempotency_key="other")])
        assert [e.seq for e in store.read()] == [1, 2]
    finally:
        store.close()


@pytest.mark.postgres
def test_a_connection_dropped_by_the_server_while_idle_is_replaced_before_use(
        fresh_pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool pings only a connection idle for a while: one the server dropped meanwhile (a
    restart, a dropped session) is replaced before the read; one handed back just now is lent
    again without a ping."""
    import dosewise.ledger.sql as sql

    store = SQLStore(fresh_pg_url)
    try:
        stored = store.append(_events(3))
        pings: list[object] = []
        real_ping = store.engine.dialect.do_ping
        monkeypatch.setattr(store.engine.dialect, "do_ping", lambda conn: pings.append(conn) or real_ping(conn))
        assert store.head() == stored[-1] and store.head() == stored[-1]
        assert pings == []  # lent again at once: no round trip spent on a ping
        killer = sa.create_engine(fresh_pg_url, isolation_level="AUTOCOMMIT")
        with killer.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").scalar()
        killer.dispose()
        assert killed and killed >= 1
        monkeypatch.setattr(sql, "_IDLE_PING_S", 0.0)
        assert store.head() == stored[-1]  # the dead connection was found by the ping and replaced
        assert len(pings) == 1
        assert list(store.read()) == stored
    finally:
        store.close()
