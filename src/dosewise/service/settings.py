"""Service settings, read from ``DOSEWISE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """``DOSEWISE_DB``, ``DOSEWISE_HOST``, ``DOSEWISE_PORT``, ``DOSEWISE_WORKERS``, ``DOSEWISE_WHO``, …"""

    model_config = SettingsConfigDict(env_prefix="DOSEWISE_", extra="ignore")

    db: str = Field("dosewise.db", description="Ledger: a SQLite path or a sqlite:///… or postgresql://… URL.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    who: Path | None = Field(None, description="WHO weekly cases/deaths CSV for need rankings "
                                               "(default: the file `dosewise data pull who` cached).")
    threads: int = Field(128, ge=1, le=1024, description="Requests handled at once per worker (their ledger "
                                                          "appends share group commits).")
    ledger_key: Path | None = Field(None, description="The ledger's private key file (signs checkpoints): a "
                                                      "receipt asked for an event no checkpoint covers yet gets a "
                                                      "new checkpoint of the ledger as it stands.")
    page_limit: int = Field(1000, ge=1, description="Largest page a list endpoint returns.")
    compare_slots: int = Field(1, ge=1, description="Comparisons that may run at once; more are refused (429).")
    sse_poll_seconds: float = Field(0.25, gt=0, description="How often the event stream looks for new events.")
    sse_heartbeat_seconds: float = Field(15.0, gt=0, description="Comment line sent on an idle event stream.")
    short_answers: bool = Field(True, description="Serve ordinary answers to offers (accept, decline) on a short "
                                                  "path that skips the framework's routing; the same answers "
                                                  "(see dosewise.service.hot).")
    log_level: str = Field("warning", description="uvicorn log level.")
