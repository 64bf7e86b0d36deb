"""Download the current surveillance files into a local cache, politely and atomically.

- Official addresses (:data:`SOURCES`), overridable with ``url=``.
- Conditional requests: the ``ETag`` and ``Last-Modified`` of the cached copy, kept in a
  sidecar ``<file>.json`` with its SHA-256, size and fetch time, are sent back as
  ``If-None-Match`` / ``If-Modified-Since``; a ``304`` keeps the file and refreshes the record.
- Streaming download with a Rich progress bar into a temporary file in the same directory,
  renamed over the old copy only once complete (a half-finished download never replaces a
  good file).
- Offline (connection refused, DNS failure, timeout): if a cached copy exists the result
  says so (``status == "offline"``) and the copy is kept; otherwise
  :class:`~dosewise.errors.DataSourceError`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import platformdirs
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from dosewise.errors import DataSourceError

__all__ = ["SOURCES", "PullResult", "Source", "default_cache_dir", "pull"]


@dataclass(frozen=True)
class Source:
    url: str
    filename: str
    description: str


SOURCES: dict[str, Source] = {
    # WHO COVID-19 dashboard, weekly cases and deaths; covid19.who.int/WHO-COVID-19-global-data.csv
    # redirects here (the dashboard's "Download data" link).
    "who": Source(
        "https://srhdpeuwpubsa.blob.core.windows.net/whdh/COVID/WHO-COVID-19-global-data.csv",
        "WHO-COVID-19-global-data.csv",
        "WHO COVID-19 dashboard: weekly cases and deaths by country",
    ),
    # Our World in Data, owid/covid-19-data README (2024-): the complete dataset now lives in
    # the OWID catalog as compact.csv (the former owid-covid-data.csv columns).
    "owid": Source(
        "https://catalog.ourworldindata.org/garden/covid/latest/compact/compact.csv",
        "owid-covid-compact.csv",
        "Our World in Data COVID-19 dataset (compact.csv)",
    ),
}

Status = Literal["downloaded", "not_modified", "offline", "imported"]


@dataclass(frozen=True)
class PullResult:
    source: str
    path: Path
    status: Status
    meta: dict[str, object]

    @property
    def message(self) -> str:
        when = self.meta.get("fetched_at", "?")
        if self.status == "offline":
            return f"offline: kept cached copy from {when} ({self.path})"
        if self.status == "not_modified":
            return f"not modified since {when}: {self.path}"
        if self.status == "imported":
            return f"imported {self.meta.get('size', 0):,} bytes, sha256 {self.meta.get('sha256')}: {self.path}"
        return f"downloaded {self.meta.get('size', 0):,} bytes, sha256 {self.meta.get('sha256')}: {self.path}"


def default_cache_dir() -> Path:
    """``platformdirs`` user cache directory for dosewise surveillance files."""
    return Path(platformdirs.user_cache_dir("dosewise")) / "surveillance"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _load_meta(path: Path) -> dict[str, object]:
    side = _sidecar(path)
    if not (path.exists() and side.exists()):
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def pull(
    source: str,
    *,
    cache_dir: Path | None = None,
    url: str | None = None,
    client: httpx.Client | None = None,
    console: Console | None = None,
    timeout: float = 30.0,
) -> PullResult:
    """Fetch ``source`` ("who" or "owid") into ``cache_dir`` (default :func:`default_cache_dir`)."""
    if source not in SOURCES:
        raise DataSourceError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    spec = SOURCES[source]
    address = url or spec.url
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.filename
    meta = _load_meta(path)
    headers: dict[str, str] = {}
    if meta.get("url") == address:
        if isinstance(meta.get("etag"), str):
            headers["If-None-Match"] = str(meta["etag"])
        if isinstance(meta.get("last_modified"), str):
            headers["If-Modified-Since"] = str(meta["last_modified"])
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True)
    try:
        with http.stream("GET", address, headers=headers) as resp:
            if resp.status_code == 304 and path.exists():
                meta = {**meta, "checked_at": _now()}
                _write_atomic(_sidecar(path), json.dumps(meta, indent=2))
                return PullResult(source, path, "not_modified", meta)
            if resp.status_code != 200:
                raise DataSourceError(f"{address} answered HTTP {resp.status_code}; cached copy left unchanged")
            total = int(resp.headers.get("Content-Length") or 0) or None
            digest = hashlib.sha256()
            size = 0
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
            try:
                with (
                    os.fdopen(fd, "wb") as fh,
                    Progress(
                        TextColumn(f"[bold]{source}"),
                        BarColumn(),
                        DownloadColumn(),
                        TransferSpeedColumn(),
                        console=console or Console(stderr=True),
                        transient=True,
                    ) as bar,
                ):
                    task = bar.add_task("download", total=total)
                    for chunk in resp.iter_bytes(chunk_size=1 << 16):
                        fh.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                        bar.update(task, advance=len(chunk))
                if total is not None and size != total:
                    raise DataSourceError(f"{address}: got {size} bytes, expected {total}; cached copy kept")
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            meta = {
                "url": address,
                "etag": resp.headers.get("ETag"),
                "last_modified": resp.headers.get("Last-Modified"),
                "sha256": digest.hexdigest(),
                "size": size,
                "fetched_at": _now(),
            }
            _write_atomic(_sidecar(path), json.dumps(meta, indent=2))
            return PullResult(source, path, "downloaded", meta)
    except (httpx.TransportError, OSError) as exc:
        if isinstance(exc, httpx.TransportError) and path.exists():
            when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(microsecond=0).isoformat()
            return PullResult(source, path, "offline", meta or {"fetched_at": when})
        if isinstance(exc, httpx.TransportError):
            raise DataSourceError(
                f"cannot reach {address} ({exc.__class__.__name__}) and no cached copy in {folder}"
            ) from exc
        raise DataSourceError(f"cannot write to the cache {folder}: {exc}") from exc
    finally:
        if own:
            http.close()


def import_file(source: str, local: Path | str, *, cache_dir: Path | None = None) -> PullResult:
    """Put a local copy of ``source``'s file (e.g. one downloaded by hand behind a firewall) into the
    cache, where ``need``, ``compare``, ``round advance`` and ``allocate`` look for it. The file must
    read as that source (it is parsed first); it is copied atomically with its sha256 recorded."""
    import shutil

    if source not in SOURCES:
        raise DataSourceError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    spec = SOURCES[source]
    src = Path(local)
    if not src.is_file():
        raise DataSourceError(f"{src}: file not found")
    if source == "who":
        from dosewise.surveillance.readers import read_who_weekly

        read_who_weekly(src)  # refuse a file that is not the WHO weekly table
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.filename
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        shutil.copymode(src, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta = {"url": f"file:{src.resolve()}", "sha256": digest.hexdigest(), "size": path.stat().st_size,
            "fetched_at": _now()}
    _write_atomic(_sidecar(path), json.dumps(meta, indent=2))
    return PullResult(source, path, "imported", meta)
