"""The one Settings object (env prefix MONETA_), built once and passed explicitly."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MONETA_", extra="ignore")

    # With no URL, an embedded PostgreSQL is started under data_dir (see db/embedded.py).
    database_url: str | None = None
    data_dir: Path = Path(".moneta")
    # The role every application connection switches to: it may not UPDATE or DELETE entries.
    database_app_role: str = "moneta_app"
    db_pool_min_size: int = Field(default=2, ge=1, le=200)
    db_pool_max_size: int = Field(default=20, ge=1, le=500)
    db_statement_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    # A request waiting this long for a row lock (e.g. a concurrent same Idempotency-Key)
    # gives up with 409 instead of holding a connection.
    db_lock_timeout_ms: int = Field(default=5_000, ge=10, le=600_000)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # API processes; >1 needs no extra setup (the embedded database is shared).
    workers: int = Field(default=1, ge=1, le=64)

    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # POST /v1/transactions/batch carries up to 10,000 transactions.
    max_batch_body_bytes: int = Field(default=16 * 1_048_576, ge=1024, le=256 * 1_048_576)
    idempotency_retention_s: int = Field(default=48 * 3600, ge=24 * 3600)
    # API-key verifications are cached in-process this long (revocation takes effect within it).
    auth_cache_ttl_s: float = Field(default=5.0, ge=0.0, le=300.0)

    # The api process also runs the scheduled jobs (expiry of pending transactions);
    # production runs `moneta worker` and turns this off.
    inprocess_worker: bool = True
    worker_interval_s: float = Field(default=1.0, gt=0.0, le=3600.0)
    worker_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Balance increments of limit-free (hot) accounts folded per pass.
    fold_batch_size: int = Field(default=50_000, ge=1, le=1_000_000)

    log_level: str = "info"
