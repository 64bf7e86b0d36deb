"""Fixtures for the service: a ledger with one key per role, the app in process, and a real
uvicorn on 127.0.0.1 for streaming and concurrency (started and stopped here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dosewise.app import Desk
from dosewise.service.app import create_app
from dosewise.service.settings import Settings

SCENARIO = """
name: service test round
as_of: 2021-08-30
participants:
  include: [KEN, UGA, PRK, BGD, NPL, MNG]
lots:
  - {id: CV, product: CoronaVac, doses: 2970000, available: 2021-08-30, expiry: 2022-02-28}
  - {id: PF, product: BNT162b2, doses: 117000, available: 2021-08-30, expiry: 2021-12-31}
policy: {name: covax-pro-rata, buffer: 0.05}
round: {opens: 2021-08-30, response_days: 7, reallocation: pro-rata}
"""

IDENTITIES = {
    # label: (role, name, participant)
    "admin": ("admin", "ada", None),
    "coordinator": ("coordinator", "carla", None),
    "reviewer": ("reviewer", "rita", None),
    "participant": ("participant", None, "PRK"),
    "other-participant": ("participant", None, "KEN"),
    "donor": ("donor", "dora", None),
    "observer": ("observer", "olga", None),
    "reviewer-carla": ("reviewer", "carla", None),  # same identity as the coordinator
}


def fresh_database(server_url: str) -> str:
    """An empty database on the throwaway PostgreSQL server."""
    import sqlalchemy as sa

    name = "s_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return str(sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False))


@dataclass
class Ledger:
    """A ledger URL with one API key per identity label."""

    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def auth(self, label: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[label]}"}


def make_ledger(url: str) -> Ledger:
    ledger = Ledger(url)
    with Desk.open(url, create=True, actor="test") as desk:
        for label, (role, name, participant) in IDENTITIES.items():
            ident, token = desk.create_key(role, name=name, participant=participant)
            ledger.tokens[label] = token
            ledger.key_ids[label] = ident.key_id
    return ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def served(ledger_url: str) -> Iterator[tuple[Ledger, TestClient, Desk]]:
    """The app in process over a ledger with one key per identity (no round yet)."""
    ledger = make_ledger(ledger_url)
    desk = Desk.open(ledger_url)
    with TestClient(create_app(Settings(db=ledger_url), desk=desk)) as client:
        yield ledger, client, desk
    desk.close()


def open_round(ledger: Ledger, client: TestClient, rid: str = "T1") -> None:
    """The coordinator proposes :data:`SCENARIO` as round ``rid`` and the reviewer approves it."""
    r = client.post("/rounds", json={"scenario": SCENARIO, "round_id": rid}, headers=ledger.auth("coordinator"))
    assert r.status_code == 201, r.text
    r = client.post(f"/rounds/{rid}/approve", headers=ledger.auth("reviewer"))
    assert r.status_code == 200, r.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]


def start_server(url: str, *, workers: int = 1, extra_env: dict[str, str] | None = None) -> Server:
    """uvicorn on 127.0.0.1 on a free port, serving the ledger at ``url``; waits until it answers."""
    port = free_port()
    env = {**os.environ, "DOSEWISE_DB": url, "DOSEWISE_SSE_POLL_SECONDS": "0.05", **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dosewise.service.app:app_from_env", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning",
         "--timeout-graceful-shutdown", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                return Server(base, proc)
        except httpx.TransportError:
            time.sleep(0.1)
    stop_server(Server(base, proc))
    raise RuntimeError("the server did not start within 60 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
