"""A relay whose broker is down keeps every event, backs off, and says so in its metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import Tenant, free_port
from tests.relay_support import RelayProcess


def _metrics(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("moneta_relay_"):
            name, _, value = line.rpartition(" ")
            values[name.split("{")[0]] = float(value)
    return values


def test_broker_down_means_lag_not_loss(
    tenant: Tenant, base_env: dict[str, str], workdir: Path
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 5)
    metrics_port, dead_port = free_port(), free_port()
    relay = RelayProcess(
        {
            **base_env,
            "MONETA_EVENTS_SINK": "kafka",
            "MONETA_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead_port}",  # nothing listens
            "MONETA_RELAY_RETRY_MAX_S": "1",
        },
        workdir / "relay-down.log",
        args=["--metrics-port", str(metrics_port)],
    )
    relay.start()
    assert relay.process is not None
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            assert relay.alive(), relay.tail()
            try:
                seen = _metrics(metrics_port)
            except httpx.HTTPError:
                seen = {}
            if seen.get("moneta_relay_lag_events", 0) > 0:
                break
            time.sleep(0.5)
        assert seen.get("moneta_relay_lag_events", 0) >= 4, (seen, relay.tail())
        assert seen["moneta_relay_lag_seconds"] > 0
        assert seen["moneta_relay_events_published_total"] == 0
        assert "not reachable" in relay.tail(200)  # it retries, with backoff, and stays up
    finally:
        relay.stop()
