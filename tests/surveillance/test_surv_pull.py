"""``pull`` against a throw-away HTTP server on 127.0.0.1 serving copies of the shared files."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dosewise.errors import DataSourceError
from dosewise.surveillance.pull import pull


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the files in ``server.files`` with a strong ETag and Last-Modified."""

    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        modified = "Sun, 28 Sep 2025 00:00:00 GMT"
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    requests: list[tuple[str, dict[str, str]]]


@pytest.fixture
def server(shared_data: Path) -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files = {
        "/WHO-COVID-19-global-data.csv": (shared_data / "surveillance" / "WHO-COVID-19-global-data.csv").read_bytes()
    }
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as c:  # never a proxy: loopback only
        yield c


def _url(srv: _Server, path: str = "/WHO-COVID-19-global-data.csv") -> str:
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}{path}"


def test_download_then_not_modified(server: _Server, client: httpx.Client, tmp_path: Path) -> None:
    first = pull("who", cache_dir=tmp_path, url=_url(server), client=client)
    body = server.files["/WHO-COVID-19-global-data.csv"]
    assert first.status == "downloaded"
    assert first.path.read_bytes() == body
    meta = json.loads((tmp_path / "WHO-COVID-19-global-data.csv.json").read_text())
    assert meta["sha256"] == hashlib.sha256(body).hexdigest()
    assert meta["size"] == len(body) and meta["etag"] and meta["last_modified"]
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".part", ".tmp")]

    second = pull("who", cache_dir=tmp_path, url=_url(server), client=client)
    assert second.status == "not_modified"
    sent = server.requests[-1][1]
    assert sent.get("If-None-Match") == meta["etag"]
    assert sent.get("If-Modified-Since") == meta["last_modified"]
    assert second.path.read_bytes() == body

    server.files["/WHO-COVID-19-global-data.csv"] = body + b"2025-10-05,ZW,Zimbabwe,AFRO,,1,,1\n"
    third = pull("who", cache_dir=tmp_path, url=_url(server), client=client)
    assert third.status == "downloaded"
    assert third.meta["sha256"] != meta["sha256"]


def test_offline_keeps_cached_copy(server: _Server, client: httpx.Client, tmp_path: Path) -> None:
    pull("who", cache_dir=tmp_path, url=_url(server), client=client)
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/WHO-COVID-19-global-data.csv"
    result = pull("who", cache_dir=tmp_path, url=dead, client=client)
    assert result.status == "offline"
    assert result.message.startswith("offline: kept cached copy from ")
    assert result.path.read_bytes() == server.files["/WHO-COVID-19-global-data.csv"]


def test_offline_without_cache_is_an_error(client: httpx.Client, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/x.csv"
    with pytest.raises(DataSourceError, match="no cached copy"):
        pull("who", cache_dir=tmp_path, url=dead, client=client)


def test_http_error_keeps_cache(server: _Server, client: httpx.Client, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="HTTP 404"):
        pull("who", cache_dir=tmp_path, url=_url(server, "/missing.csv"), client=client)
    assert not (tmp_path / "WHO-COVID-19-global-data.csv").exists()
    with pytest.raises(DataSourceError, match="unknown source"):
        pull("jhu", cache_dir=tmp_path)
