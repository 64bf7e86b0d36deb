"""Fixtures for the ledger tests: a fresh database per test on each backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dosewise.ledger import Store, open_store


@pytest.fixture
def fresh_pg_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL server; dropped afterwards."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory"
    if backend == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("fresh_pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQL ledger location: a SQLite file path or a PostgreSQL database URL."""
    return _url(request.param, request, tmp_path)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger on each backend."""
    return _url(request.param, request, tmp_path)


@pytest.fixture
def store(any_url: str) -> Iterator[Store]:
    s = open_store(any_url)
    yield s
    s.close()


@pytest.fixture
def sql_store(sql_url: str) -> Iterator[Store]:
    s = open_store(sql_url)
    yield s
    s.close()


@pytest.fixture
def raw_sql(sql_url: str) -> Callable[[str], None]:
    """Run SQL as the database owner would, in its own committed transaction."""

    def run(statement: str) -> None:
        url = sql_url if "://" in sql_url else f"sqlite:///{sql_url}"
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    return run
