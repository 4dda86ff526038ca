"""Prometheus metrics. Names start with `moneta_`; labels are bounded (route templates,
status codes, problem codes, states), never ids.

Counters and histograms live in each process. Gauges about shared state (event lag,
webhook backlog, invariant results, pool use) are read from the database at scrape time,
so every api replica reports the same truth."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from moneta.db.database import Database
from moneta.events import repository

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http = Histogram(
            "moneta_http_request_duration_seconds",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.transactions = Counter(
            "moneta_transactions", "Money movements accepted, by kind", ["kind"], registry=r
        )
        self.problems = Counter(
            "moneta_problems", "Problem answers by status and code", ["status", "code"], registry=r
        )
        self.insufficient_funds = Counter(
            "moneta_insufficient_funds", "Transfers refused for insufficient funds", registry=r
        )
        self.rate_limited = Counter(
            "moneta_rate_limited", "Requests refused by the rate limiter", registry=r
        )
        self.pool = Gauge(
            "moneta_db_pool_connections", "Database pool connections", ["state"], registry=r
        )
        self.event_lag = Gauge(
            "moneta_event_lag_events",
            "Events a consumer has not delivered",
            ["consumer"],
            registry=r,
        )
        self.event_lag_age = Gauge(
            "moneta_event_lag_seconds",
            "Age of the oldest event a consumer has not delivered",
            ["consumer"],
            registry=r,
        )
        self.sequencer_lag = Gauge(
            "moneta_event_sequencer_lag_bytes", "WAL not yet read by the sequencer", registry=r
        )
        self.webhook_backlog = Gauge(
            "moneta_webhook_deliveries", "Webhook deliveries by status", ["status"], registry=r
        )
        self.invariant_violations = Gauge(
            "moneta_invariant_violations",
            "Violations found by the last invariant check",
            registry=r,
        )
        self.invariant_checked = Gauge(
            "moneta_invariant_last_check_timestamp_seconds",
            "When the invariant check last ran (Unix time)",
            registry=r,
        )
        self.scrape_errors = Counter(
            "moneta_metrics_scrape_errors", "Database gauges that could not be read", registry=r
        )

    async def refresh(self, db: Database) -> None:
        """Read the shared-state gauges (called by GET /metrics)."""
        pool = db.pool
        self.pool.labels("size").set(pool.get_size())
        self.pool.labels("idle").set(pool.get_idle_size())
        self.pool.labels("max").set(pool.get_max_size())
        try:
            async with db.connection() as conn:
                await self._refresh_from(conn)
        except Exception:
            self.scrape_errors.inc()

    async def _refresh_from(self, conn: Any) -> None:
        for consumer, (events, age) in (await repository.lags(conn, None)).items():
            self.event_lag.labels(consumer).set(events)
            self.event_lag_age.labels(consumer).set(age)
        for row in await conn.fetch(
            "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status"
        ):
            self.webhook_backlog.labels(row["status"]).set(row["n"])
        check = await conn.fetchrow(
            "SELECT violations, extract(epoch FROM checked_at)::float8 AS at "
            "FROM invariant_checks ORDER BY id DESC LIMIT 1"
        )
        if check is not None:
            self.invariant_violations.set(check["violations"])
            self.invariant_checked.set(check["at"])
        lag = await conn.fetchval(
            """SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)
                 FROM pg_replication_slots WHERE slot_name LIKE 'moneta%'"""
        )
        self.sequencer_lag.set(float(lag or 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def serve_metrics(registry: CollectorRegistry, port: int) -> None:
    """A process without an HTTP API (relay, webhooks) serves its metrics on a port."""
    start_http_server(port, addr="0.0.0.0", registry=registry)  # noqa: S104 - scraped from outside
