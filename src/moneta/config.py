"""The one Settings object (env prefix MONETA_), built once and passed explicitly."""

from pathlib import Path
from typing import Literal

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

    # Redis (rate limits, shared caches). Unset: no rate limiting, in-process caches only.
    redis_url: str | None = None
    redis_timeout_s: float = Field(default=0.05, gt=0.0, le=10.0)
    # Per API key unless the key carries its own (POST /v1/api-keys rate_limit).
    rate_limit_per_s: float = Field(default=100.0, gt=0.0, le=1_000_000.0)
    rate_limit_burst: int = Field(default=200, ge=1, le=1_000_000)
    # Redis unreachable: let requests through (true) or answer 503 (false).
    rate_limit_fail_open: bool = True

    # The back-office console (/console) keeps its sessions in Redis.
    console_session_idle_s: int = Field(default=1800, ge=60, le=86_400)
    # Secure cookies need https (browsers treat http://localhost as secure too).
    console_cookie_secure: bool = True

    log_level: str = "info"
    # json: one object per line with request_id and ledger_id (production); text: terminals.
    log_format: Literal["json", "text"] = "json"
    # One log line per request (5xx answers are always logged).
    access_log: bool = False
    # Errors and ERROR log records go to Sentry when set (PII and secrets scrubbed).
    sentry_dsn: str | None = None
    environment: str = "production"
    # GET /metrics on the API port (Prometheus text format; no tenant data in it).
    metrics_enabled: bool = True
    # When set, GET /metrics wants `Authorization: Bearer <token>` (Prometheus:
    # authorization.credentials); for an API port reachable from outside the cluster.
    metrics_token: str | None = None
    # The worker checks every ledger invariant this often (a full pass over entries).
    invariant_check_interval_s: float = Field(default=3600.0, gt=0.0, le=7 * 86_400.0)

    # Event stream (moneta/events). The sequencer numbers each ledger's events in commit
    # order from a logical replication slot; one process at a time does it (any of api
    # with the in-process worker, worker, relay, webhooks).
    events_slot: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]{1,63}$", description="default: moneta_<database>"
    )
    # Off: this process never sequences (another one does, or the stream is not wanted).
    sequencer_enabled: bool = True
    sequencer_interval_s: float = Field(default=0.05, gt=0.0, le=60.0)
    sequencer_batch_changes: int = Field(default=20_000, ge=1, le=1_000_000)

    # `moneta relay`: where events go. Kafka: a topic per event family (<prefix>.ledger,
    # <prefix>.account, <prefix>.transaction), keyed by ledger id. RabbitMQ: a topic
    # exchange, routing key = event type. SQS: a FIFO queue, message group = ledger id.
    events_sink: Literal["kafka", "rabbitmq", "sqs"] | None = None
    # `moneta dev` also relays from the api process when a sink is configured.
    inprocess_relay: bool = False
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # MSK and other managed brokers: TLS and/or SASL (SCRAM or PLAIN).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None  # default: the system's trust store
    kafka_topic_prefix: str = Field(default="moneta", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    kafka_topic_partitions: int = Field(default=3, ge=1, le=10_000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=16)
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    rabbitmq_exchange: str = "moneta.events"
    sqs_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    relay_batch_size: int = Field(default=2000, ge=1, le=10_000)
    relay_interval_s: float = Field(default=0.05, gt=0.0, le=60.0)
    # A replica lets go of a ledger it has had nothing to send for this long, so others
    # (e.g. a replica that just started) can take it.
    relay_lease_idle_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    # A broker that refuses: retry with backoff from min to max, forever (nothing is
    # dropped); progress is marked only after the broker acknowledged.
    relay_retry_min_s: float = Field(default=0.2, gt=0.0, le=60.0)
    relay_retry_max_s: float = Field(default=30.0, gt=0.0, le=3600.0)

    # `moneta webhooks`; `moneta dev` also sends them from the api process.
    inprocess_webhooks: bool = False
    webhook_timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    webhook_concurrency: int = Field(default=16, ge=1, le=1000)
    webhook_interval_s: float = Field(default=0.2, gt=0.0, le=60.0)
    # Retries back off exponentially from min to max, for retry_window_s, then dead-letter.
    webhook_backoff_min_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0.0, le=86_400.0)
    webhook_retry_window_s: float = Field(default=3 * 86_400.0, gt=0.0, le=30 * 86_400.0)
    # SSRF guard: endpoint hosts must resolve to public addresses, except these networks
    # (comma-separated CIDRs, e.g. "127.0.0.1/32" for local development).
    webhook_allowed_networks: str = ""
    # Plain http:// endpoints (https:// only by default).
    webhook_allow_http: bool = False
    # How long a rotated-out secret keeps signing, by default.
    webhook_secret_overlap_s: int = Field(default=86_400, ge=0, le=30 * 86_400)
