"""Operations from the outside: Prometheus metrics, request ids, JSON logs without
secrets, the scheduled invariant check, Sentry reports and OpenTelemetry traces, all
against a real server whose Sentry DSN and OTLP endpoint point at a local receiver."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import Stack, Tenant, free_port, new_tenant, start_server, stop_server

RECEIVER_PORT = free_port()
STACK_ENV = {
    "MONETA_LOG_LEVEL": "info",
    "MONETA_LOG_FORMAT": "json",
    "MONETA_ACCESS_LOG": "true",
    "MONETA_INVARIANT_CHECK_INTERVAL_S": "1",
    "MONETA_SENTRY_DSN": f"http://public@127.0.0.1:{RECEIVER_PORT}/1",
    "MONETA_ENVIRONMENT": "test",
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{RECEIVER_PORT}",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Receiver(ThreadingHTTPServer):
    """Stands in for Sentry and an OpenTelemetry collector: keeps what they would get."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", RECEIVER_PORT), _Handler)
        self.sentry: list[bytes] = []
        self.spans: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path.startswith("/api/1/"):
            self.server.sentry.append(body)
        elif self.path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans += [span.name for span in scope.spans]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(receiver: Receiver, isolated_stack: Stack) -> Stack:
    return isolated_stack


@pytest.fixture
def tenant(stack: Stack) -> Iterator[Tenant]:
    t = new_tenant(stack.admin, stack.server)
    yield t
    t.client.close()


def eventually(probe: Callable[[], Any], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def metric(stack: Stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.server.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        named = line.startswith((name + "{", name + " "))
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_transfers_and_refusals(stack: Stack, tenant: Tenant) -> None:
    route = {"route": "/v1/transactions", "method": "POST", "status": "201"}
    before = metric(stack, "moneta_http_request_duration_seconds_count", **route)
    transfers = metric(stack, "moneta_transactions_total", kind="transfer")
    refusals = metric(stack, "moneta_insufficient_funds_total")
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 10)
    tenant.transfer("alice", "cash", 1000, expect=422)
    assert metric(stack, "moneta_http_request_duration_seconds_count", **route) == before + 1
    assert metric(stack, "moneta_transactions_total", kind="transfer") == transfers + 1
    assert metric(stack, "moneta_insufficient_funds_total") == refusals + 1
    assert metric(stack, "moneta_problems_total", status="422", code="insufficient_funds") >= 1
    assert metric(stack, "moneta_db_pool_connections", state="max") > 0


def test_metric_labels_are_bounded(stack: Stack, tenant: Tenant) -> None:
    """Ids never become label values: the route template does."""
    account = tenant.account("bob")
    tenant.client.get(f"/v1/accounts/{account['id']}")
    tenant.client.get(f"/v1/accounts/{uuid.uuid4()}")
    tenant.client.get(f"/no/such/path/{uuid.uuid4()}")
    text = httpx.get(f"{stack.server.url}/metrics", timeout=10).text
    assert 'route="/v1/accounts/{account_id}"' in text
    assert 'route="unmatched"' in text
    labels = [line.split("{", 1)[1] for line in text.splitlines() if "{" in line]
    assert not [label for label in labels if UUID.search(label)]


def test_request_ids_are_echoed_or_minted(stack: Stack, tenant: Tenant) -> None:
    given = tenant.client.get("/v1/events", headers={"X-Request-Id": "trace-abc.123"})
    assert given.headers["x-request-id"] == "trace-abc.123"
    minted = tenant.client.get("/v1/events", headers={"X-Request-Id": "bad id;drop"})
    assert re.fullmatch(r"[0-9a-f]{32}", minted.headers["x-request-id"])


def test_logs_are_json_with_request_and_ledger_ids_and_no_secrets(
    stack: Stack, tenant: Tenant
) -> None:
    forged = "mk_" + "0" * 32 + "_not-a-real-secret"
    refused = httpx.get(
        f"{stack.server.url}/v1/ledgers", headers={"Authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401
    tenant.account("carol")
    rid = tenant.client.get("/v1/accounts", headers={"X-Request-Id": "log-check-1"})
    assert rid.status_code == 200

    def logged() -> list[dict[str, Any]]:
        lines = stack.server.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    entries = eventually(lambda: [e for e in logged() if e.get("request_id") == "log-check-1"])
    assert entries, "no log line for the request"
    assert entries[0]["ledger_id"] == tenant.ledger_id
    assert entries[0]["route"] == "/v1/accounts"
    assert entries[0]["status"] == 200
    text = stack.server.log_path.read_text()
    assert forged not in text
    assert "not-a-real-secret" not in text
    for key in tenant.keys.values():
        assert key not in text


def test_traces_reach_the_collector(stack: Stack, tenant: Tenant, receiver: Receiver) -> None:
    tenant.account("dave")
    spans = eventually(lambda: [s for s in receiver.spans if s.startswith("POST /v1/accounts")])
    assert spans, receiver.spans[:20]
    # asyncpg's spans are named after the statement's first word (or the database).
    assert eventually(lambda: [s for s in receiver.spans if not s.startswith(("POST", "GET"))])


def test_broken_invariant_is_found_logged_exported_and_reported(
    stack: Stack, tenant: Tenant, receiver: Receiver
) -> None:
    cash = tenant.account("cash2", normal_balance="debit", overdraft_limit=None)
    erin = tenant.account("erin")
    tenant.transfer(cash["id"], erin["id"], 7)
    assert eventually(lambda: metric(stack, "moneta_invariant_last_check_timestamp_seconds") > 0)
    assert metric(stack, "moneta_invariant_violations") == 0
    # A hand edit under the API: the balance no longer equals its entries.
    stack.db.execute(
        "UPDATE balances SET posted_credits = posted_credits + 1 WHERE account_id = %s",
        (erin["id"],),
    )
    assert eventually(lambda: metric(stack, "moneta_invariant_violations") >= 1)
    assert "LEDGER INVARIANTS BROKEN" in stack.server.log_path.read_text()
    reports = eventually(lambda: [r for r in receiver.sentry if b"LEDGER INVARIANTS" in r])
    assert reports, "Sentry got nothing"
    for report in receiver.sentry:
        assert b"mk_" not in report
        assert b"whsec_" not in report
    stack.db.execute(
        "UPDATE balances SET posted_credits = posted_credits - 1 WHERE account_id = %s",
        (erin["id"],),
    )


def test_metrics_token_guards_the_endpoint(base_env: dict[str, str], workdir: Path) -> None:
    guarded = start_server(
        {**base_env, "MONETA_METRICS_TOKEN": "scrape-me"}, workdir / "metrics-token.log"
    )
    try:
        assert httpx.get(f"{guarded.url}/metrics").status_code == 401
        wrong = httpx.get(f"{guarded.url}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = httpx.get(f"{guarded.url}/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200
        assert "moneta_http_request_duration_seconds" in right.text
    finally:
        stop_server(guarded)
