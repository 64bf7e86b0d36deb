from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dosewise.ledger import Store, open_store

SCENARIO = """
name: test round
as_of: 2021-08-30
participants:
  include: [KEN, UGA, PRK, BGD, NPL, MNG]
  overrides:
    MNG: {cold_chain: [2-8C]}
    NPL: {capacity_per_week: 1000}
    UGA: {lead_time_days: 150}
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}
  - {id: PF, product: BNT162b2, doses: 117000, available: 2021-08-30, expiry: 2021-12-31}
policy: {name: covax-pro-rata, buffer: 0.05}
round: {id: T1, opens: 2021-08-30, response_days: 7, reallocation: pro-rata}
"""


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        s = open_store("memory")
    elif request.param == "sqlite":
        s = open_store(str(tmp_path / "ledger.db"))
    else:
        s = open_store(fresh_database(request.getfixturevalue("postgres_url")))
    yield s
    s.close()


def fresh_database(server_url: str) -> str:
    """An empty database on the throwaway server, so each test starts from an empty ledger."""
    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return str(sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return fresh_database(request.getfixturevalue("postgres_url"))
