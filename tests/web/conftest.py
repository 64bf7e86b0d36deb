"""Fixtures for the dashboard: the demo ledger (AMC92 round played, DPRK's CoronaVac offer open)
with one API key per role, a real uvicorn on 127.0.0.1 serving it (started and stopped here),
and headless Chromium from the OS packages driven by Playwright (no browser is downloaded)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dosewise import app as api

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
WHO_FILE = "surveillance/WHO-COVID-19-global-data.csv"


@dataclass
class DemoLedger:
    """A demo ledger file and the API key of each demo identity (by role, or by participant code)."""

    path: Path
    tokens: dict[str, str] = field(default_factory=dict)
    who: Path | None = None

    def copy(self, to: Path) -> DemoLedger:
        shutil.copy(self.path, to)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                shutil.copy(side, Path(f"{to}{suffix}"))
        return DemoLedger(to, dict(self.tokens), self.who)


@pytest.fixture(scope="session")
def demo_ledger(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> DemoLedger:
    """Built once per session; tests that change it take a copy."""
    path = tmp_path_factory.mktemp("web") / "demo.db"
    who = shared_data / WHO_FILE
    ledger = DemoLedger(path, who=who)
    with api.Desk.open(str(path), create=True, actor="covax-demo") as desk:
        api.stage_demo(desk, who=who)
        for role, name, participant in api.DEMO_KEYS:
            _, token = desk.create_key(role, name=name, participant=participant)
            ledger.tokens[participant or role] = token
    return ledger


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(ledger: DemoLedger) -> Server:
    """uvicorn on 127.0.0.1 on a free port over ``ledger``; waits until the dashboard answers."""
    port = free_port()
    env = {**os.environ, "DOSEWISE_DB": str(ledger.path), "DOSEWISE_SSE_POLL_SECONDS": "0.05"}
    if ledger.who is not None:
        env["DOSEWISE_WHO"] = str(ledger.who)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dosewise.service.app:app_from_env", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{server.base}/web/login", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("the server did not start within 90 s")


@pytest.fixture(scope="session")
def demo_server(demo_ledger: DemoLedger,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, DemoLedger]]:
    """The dashboard over a copy of the demo ledger (the live test records a decline on it)."""
    ledger = demo_ledger.copy(tmp_path_factory.mktemp("served") / "demo.db")
    server = start_server(ledger)
    try:
        yield server, ledger
    finally:
        server.stop()


@dataclass
class Browser:
    """A Chromium instance; ``offsite`` collects every request for a URL not on 127.0.0.1."""

    browser: Any
    offsite: list[str] = field(default_factory=list)

    def context(self, *, width: int = 1280, height: int = 800) -> Any:
        ctx = self.browser.new_context(viewport={"width": width, "height": height})

        def guard(route: Any) -> None:
            host = urlsplit(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
                route.continue_()
            else:
                self.offsite.append(route.request.url)
                route.abort()

        ctx.route("**/*", guard)
        ctx.set_default_timeout(30_000)
        return ctx


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (scripts/test.sh does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Browser(chromium)
        finally:
            chromium.close()


def login(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/web/login")
    page.fill("#key", token)
    page.click("form[action='/web/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/web/login" not in url)


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot kept as a test artefact (test-artifacts/web/, ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
