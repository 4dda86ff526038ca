"""Webhooks end to end: a real `moneta webhooks` process delivers to a real HTTP receiver
on 127.0.0.1, with retries, time-outs, dead-lettering, redelivery and secret rotation;
the API refuses unsafe URLs and keeps tenants apart.

The dispatcher runs with fast settings (backoff 0.2-0.5 s, 1 s time-out, 4 s retry
window). Each test makes its own tenant and its own receiver path."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from moneta.webhooks import SignatureError, verify
from tests.conftest import Server, Tenant, free_port, new_tenant
from tests.webhook_receiver import Answer, Received, Receiver

TIMEOUT_S = 1.0
RETRY_WINDOW_S = 4.0
FAST_SETTINGS = {
    "MONETA_WEBHOOK_BACKOFF_MIN_S": "0.2",
    "MONETA_WEBHOOK_BACKOFF_MAX_S": "0.5",
    "MONETA_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
    "MONETA_WEBHOOK_RETRY_WINDOW_S": str(RETRY_WINDOW_S),
    "MONETA_WEBHOOK_INTERVAL_S": "0.05",
}


@dataclass
class Dispatcher:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int

    def outcomes(self) -> dict[str, float]:
        """moneta_webhook_deliveries_total by outcome, from the process's /metrics."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("moneta_webhook_deliveries_total{"):
                outcome = line.split('outcome="')[1].split('"')[0]
                found[outcome] = float(line.rsplit(" ", 1)[1])
        return found

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"moneta webhooks exited: {self.log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dispatcher(server: Server, base_env: dict[str, str], workdir: Path) -> Iterator[Dispatcher]:
    """A real `moneta webhooks` process (the server fixture has run the migrations)."""
    log_path = workdir / "webhooks.log"
    metrics_port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moneta", "webhooks", "--metrics-port", str(metrics_port)],
            env={**base_env, **FAST_SETTINGS},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Dispatcher(process, log_path, metrics_port)
    yield running
    running.assert_alive()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("moneta webhooks did not stop on SIGTERM")
    if process.returncode != 0:
        pytest.fail(f"moneta webhooks exited {process.returncode}: {log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@dataclass
class Hooks:
    """A tenant seen through its admin key, with the webhook API as helpers."""

    tenant: Tenant
    api: httpx.Client  # the tenant's admin key
    dispatcher: Dispatcher

    def create(self, url: str, event_types: list[str], **extra: Any) -> dict[str, Any]:
        made = self.api.post(
            "/v1/webhook-endpoints", json={"url": url, "event_types": event_types, **extra}
        )
        assert made.status_code == 201, made.text
        endpoint: dict[str, Any] = made.json()
        return endpoint

    def rotate(self, endpoint_id: str, **body: Any) -> dict[str, Any]:
        rotated = self.api.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", json=body)
        assert rotated.status_code == 200, rotated.text
        endpoint: dict[str, Any] = rotated.json()
        return endpoint

    def deliveries(self, endpoint_id: str, status: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        if status:
            params["status"] = status
        for _ in range(100):
            page = self.api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            found += body["data"]
            if not body["next_cursor"]:
                return found
            params["cursor"] = body["next_cursor"]
        raise AssertionError("delivery paging did not end")

    def wait_deliveries(
        self,
        endpoint_id: str,
        until: Callable[[list[dict[str, Any]]], bool],
        timeout_s: float = 15,
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.dispatcher.assert_alive()
            found = self.deliveries(endpoint_id)
            if until(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def events(self) -> list[dict[str, Any]]:
        page = self.api.get("/v1/events", params={"limit": 200})
        assert page.status_code == 200, page.text
        events: list[dict[str, Any]] = page.json()["data"]
        return events

    def funded_pair(self) -> tuple[str, str]:
        self.tenant.account("cash", normal_balance="debit", overdraft_limit=None)
        self.tenant.account("alice")
        return "cash", "alice"


@pytest.fixture
def hooks(tenant: Tenant, server: Server, dispatcher: Dispatcher) -> Iterator[Hooks]:
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {tenant.keys['admin']}"},
        timeout=30,
    ) as api:
        yield Hooks(tenant, api, dispatcher)


def all_settled(count: int, status: str = "succeeded") -> Callable[[list[dict[str, Any]]], bool]:
    def check(deliveries: list[dict[str, Any]]) -> bool:
        return len(deliveries) >= count and all(d["status"] == status for d in deliveries)

    return check


def at_least(count: int) -> Callable[[list[Received]], bool]:
    return lambda got: len(got) >= count


def v1_signatures(header: str) -> list[str]:
    return [part[3:] for part in header.split(",") if part.startswith("v1=")]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_delivery_is_signed_and_only_subscribed_types_are_sent(
    hooks: Hooks, receiver: Receiver
) -> None:
    path, url = receiver.new_path()
    endpoint = hooks.create(url, ["transaction.created"], description="payments")
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["event_types"] == ["transaction.created"]
    assert endpoint["ledger_id"] == hooks.tenant.ledger_id  # the key's ledger by default
    assert endpoint["description"] == "payments"
    debit, credit = hooks.funded_pair()  # account.created: not subscribed
    transfer = hooks.tenant.transfer(debit, credit, 25)

    got = receiver.wait(path, at_least(1))
    assert len(got) == 1, got
    request = got[0]
    event = verify(request.body, request.headers["moneta-signature"], endpoint["secret"])
    assert event["type"] == "transaction.created"
    assert event["data"]["id"] == transfer["id"]
    assert event["ledger_id"] == hooks.tenant.ledger_id
    with pytest.raises(SignatureError):
        verify(request.body, request.headers["moneta-signature"], "whsec_wrong")
    with pytest.raises(SignatureError):
        verify(request.body + b" ", request.headers["moneta-signature"], endpoint["secret"])

    # The event is the one GET /v1/events shows.
    [listed] = [e for e in hooks.events() if e["type"] == "transaction.created"]
    assert event["id"] == listed["id"]
    assert event["sequence"] == listed["sequence"]
    assert event["data"] == listed["data"]

    assert request.headers["moneta-event-id"] == event["id"]
    assert request.headers["moneta-event-type"] == "transaction.created"
    assert request.headers["moneta-delivery-attempt"] == "1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Moneta-Webhooks/")

    # Fan-out is in sequence order, so the earlier account.created events were passed over.
    deliveries = hooks.wait_deliveries(endpoint["id"], all_settled(1))
    assert len(deliveries) == 1
    [delivery] = deliveries
    assert request.headers["moneta-delivery-id"] == delivery["id"]
    assert delivery["status"] == "succeeded"
    assert delivery["event_id"] == event["id"]
    assert delivery["event_type"] == "transaction.created"
    assert delivery["event_sequence"] == event["sequence"]
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] is None
    assert delivery["next_attempt_at"] is None
    assert delivery["completed_at"] is not None
    assert [(a["status_code"], a["error"]) for a in delivery["log"]] == [(200, None)]
    assert delivery["log"][0]["duration_ms"] >= 0

    # The secret is shown once: never by GET or list.
    shown = hooks.api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    assert "secret" not in shown
    assert shown["id"] == endpoint["id"]
    listed_endpoints = hooks.api.get("/v1/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed_endpoints] == [endpoint["id"]]
    assert "secret" not in listed_endpoints[0]


def test_wildcard_receives_every_event_after_its_creation(hooks: Hooks, receiver: Receiver) -> None:
    path, url = receiver.new_path()
    endpoint = hooks.create(url, ["*", "account.created"])
    assert endpoint["event_types"] == ["*"]
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 10)
    hold = hooks.tenant.transfer(debit, credit, 5, pending=True)
    voided = hooks.tenant.client.post(f"/v1/transactions/{hold['id']}/void")
    assert voided.status_code == 200, voided.text

    expected = [
        "account.created",
        "account.created",
        "transaction.created",
        "transaction.pending",
        "transaction.voided",
    ]
    deliveries = hooks.wait_deliveries(endpoint["id"], all_settled(len(expected)))
    deliveries.sort(key=lambda d: d["event_sequence"])
    # ledger.created was written before the endpoint existed: not offered to it.
    assert [d["event_type"] for d in deliveries] == expected
    events = hooks.events()
    assert [e["type"] for e in events] == ["ledger.created", *expected]
    assert [d["event_id"] for d in deliveries] == [e["id"] for e in events[1:]]

    got = receiver.wait(path, at_least(len(expected)))
    seen = sorted(
        (verify(r.body, r.headers["moneta-signature"], endpoint["secret"]) for r in got),
        key=lambda e: int(e["sequence"]),
    )
    assert [e["id"] for e in seen] == [e["id"] for e in events[1:]]
    assert seen[-1]["data"]["id"] == hold["id"]
    assert seen[-1]["data"]["status"] == "voided"


def test_failed_attempts_are_retried_until_success(hooks: Hooks, receiver: Receiver) -> None:
    path, url = receiver.new_path([500, 500], then=200)
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 7)

    [delivery] = hooks.wait_deliveries(endpoint["id"], all_settled(1))
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["log"]] == [500, 500, 200]
    assert [a["error"] for a in delivery["log"]] == ["HTTP 500", "HTTP 500", None]
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] is None

    got = receiver.received(path)
    assert [r.headers["moneta-delivery-attempt"] for r in got] == ["1", "2", "3"]
    assert {r.headers["moneta-delivery-id"] for r in got} == {delivery["id"]}
    assert {r.headers["moneta-event-id"] for r in got} == {delivery["event_id"]}
    assert len({r.body for r in got}) == 1  # the same event every time
    for r in got:  # each attempt is freshly signed
        verify(r.body, r.headers["moneta-signature"], endpoint["secret"])
    # Backoff: at least min (0.2 s) minus 20 % jitter between attempts.
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(gap >= 0.15 for gap in gaps), gaps


def test_a_receiver_slower_than_the_timeout_is_retried(hooks: Hooks, receiver: Receiver) -> None:
    path, url = receiver.new_path([Answer(200, delay_s=2 * TIMEOUT_S)], then=200)
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 7)

    [delivery] = hooks.wait_deliveries(endpoint["id"], all_settled(1))
    first, second = delivery["log"]
    assert first["status_code"] is None
    assert "timed out" in first["error"], first
    assert first["duration_ms"] >= TIMEOUT_S * 1000 * 0.9
    assert first["duration_ms"] < TIMEOUT_S * 1000 * 1.9  # it did not wait for the answer
    assert (second["status_code"], second["error"]) == (200, None)
    assert delivery["attempts"] == 2
    assert [r.headers["moneta-delivery-attempt"] for r in receiver.received(path)] == ["1", "2"]


def test_dead_letter_then_redeliver(hooks: Hooks, receiver: Receiver) -> None:
    before = hooks.dispatcher.outcomes()
    path, url = receiver.new_path(then=500)
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 7)

    [delivery] = hooks.wait_deliveries(endpoint["id"], all_settled(1, "dead"), timeout_s=20)
    assert delivery["status"] == "dead", delivery
    tries = delivery["attempts"]
    assert tries >= 3  # backoff 0.2-0.5 s over a 4 s window
    assert len(delivery["log"]) == tries
    assert all(a["status_code"] == 500 for a in delivery["log"])
    assert delivery["last_status_code"] == 500
    assert delivery["last_error"] == "HTTP 500"
    assert delivery["next_attempt_at"] is None
    # Given up within the retry window (plus one attempt's worth of slack).
    given_up = parse_time(delivery["completed_at"]) - parse_time(delivery["created_at"])
    assert given_up < timedelta(seconds=RETRY_WINDOW_S + TIMEOUT_S + 1), given_up
    assert len(receiver.received(path)) == tries

    assert [d["id"] for d in hooks.deliveries(endpoint["id"], "dead")] == [delivery["id"]]
    outcomes = hooks.dispatcher.outcomes()  # the process's metrics saw it too
    assert outcomes["dead"] >= before.get("dead", 0) + 1
    assert outcomes["failed"] >= before.get("failed", 0) + tries - 1
    assert hooks.deliveries(endpoint["id"], "pending") == []
    assert hooks.deliveries(endpoint["id"], "succeeded") == []
    bad = hooks.api.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", params={"status": "lost"}
    )
    assert bad.status_code == 422, bad.text

    # The receiver is fixed; an operator sends the dead delivery again.
    receiver.program(path, [], then=200)
    again = hooks.api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/redeliver"
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == delivery["id"]
    assert again.json()["status"] in ("pending", "succeeded")

    [done] = hooks.wait_deliveries(endpoint["id"], all_settled(1))
    assert done["attempts"] == tries + 1
    assert [a["status_code"] for a in done["log"]] == [500] * tries + [200]
    assert done["last_status_code"] == 200
    assert done["last_error"] is None
    assert hooks.deliveries(endpoint["id"], "dead") == []
    got = receiver.received(path)
    assert len(got) == tries + 1
    assert got[-1].headers["moneta-delivery-attempt"] == str(tries + 1)
    assert got[-1].headers["moneta-delivery-id"] == delivery["id"]
    assert verify(got[-1].body, got[-1].headers["moneta-signature"], endpoint["secret"])

    missing = hooks.api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/"
        "00000000-0000-7000-8000-000000000000/redeliver"
    )
    assert missing.status_code == 404, missing.text
    garbage = hooks.api.post(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/nope/redeliver")
    assert garbage.status_code == 404, garbage.text


def test_redirects_are_not_followed(hooks: Hooks, receiver: Receiver) -> None:
    """A 3xx could point anywhere (the SSRF check saw only the first URL): it is a failure."""
    elsewhere_path, elsewhere_url = receiver.new_path()
    path, url = receiver.new_path([Answer(307, headers=(("Location", elsewhere_url),))])
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 7)

    [delivery] = hooks.wait_deliveries(endpoint["id"], all_settled(1))
    assert [(a["status_code"], a["error"]) for a in delivery["log"]] == [
        (307, "HTTP 307"),
        (200, None),
    ]
    assert len(receiver.received(path)) == 2
    assert receiver.received(elsewhere_path) == []


def test_secret_rotation(hooks: Hooks, receiver: Receiver) -> None:
    path, url = receiver.new_path()
    endpoint = hooks.create(url, ["transaction.created"])
    assert endpoint["previous_secret_expires_at"] is None
    debit, credit = hooks.funded_pair()
    old = endpoint["secret"]

    overlapping = hooks.rotate(endpoint["id"], overlap_s=600)
    new = overlapping["secret"]
    assert new != old
    assert new.startswith("whsec_")
    expires = parse_time(overlapping["previous_secret_expires_at"])
    assert timedelta(seconds=590) < expires - parse_time(endpoint["created_at"])
    assert expires - parse_time(endpoint["created_at"]) < timedelta(seconds=660)
    shown = hooks.api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    assert shown["previous_secret_expires_at"] == overlapping["previous_secret_expires_at"]
    assert "secret" not in shown

    hooks.tenant.transfer(debit, credit, 1)
    [first] = receiver.wait(path, at_least(1))
    header = first.headers["moneta-signature"]
    assert len(v1_signatures(header)) == 2
    assert verify(first.body, header, old)["type"] == "transaction.created"
    assert verify(first.body, header, new)["type"] == "transaction.created"
    with pytest.raises(SignatureError):
        verify(first.body, header, "whsec_neither")

    retired = hooks.rotate(endpoint["id"], overlap_s=0)
    newest = retired["secret"]
    assert newest not in (old, new)
    assert retired["previous_secret_expires_at"] is None  # already past

    hooks.tenant.transfer(debit, credit, 2)
    got = receiver.wait(path, at_least(2))
    assert len(got) == 2
    header = got[1].headers["moneta-signature"]
    assert len(v1_signatures(header)) == 1
    assert verify(got[1].body, header, newest)["data"]["postings"][0]["amount"] == 2
    for stale in (old, new):
        with pytest.raises(SignatureError):
            verify(got[1].body, header, stale)

    # No body: the default overlap (24 h) keeps the previous secret signing.
    default = hooks.rotate(endpoint["id"])
    left = parse_time(default["previous_secret_expires_at"]) - parse_time(endpoint["created_at"])
    assert timedelta(hours=23, minutes=59) < left < timedelta(hours=24, minutes=5)
    for invalid in ({"overlap_s": -1}, {"overlap_s": "60"}, {"overlap_s": 31 * 86_400}):
        refused = hooks.api.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json=invalid
        )
        assert refused.status_code == 422, (invalid, refused.text)


UNSAFE_URLS = [
    "http://10.0.0.1/x",
    "http://169.254.169.254/latest/meta-data",
    "http://192.168.1.10/",
    "http://[::1]:8080/",
    "http://[fd00::1]/",
    "ftp://example.com/",
    "http://user:pw@127.0.0.1/",
    "http://127.0.0.2/",  # loopback, but outside the allowed 127.0.0.1/32
    "http://0.0.0.0/",
    "http://[::ffff:10.0.0.1]/",
    "http://127.0.0.1:99999/",
    "http:///no-host",
]


def test_unsafe_urls_are_refused(tenant: Tenant, server: Server) -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tenant.keys['admin']}"}
    ) as api:
        for url in UNSAFE_URLS:
            refused = api.post(
                "/v1/webhook-endpoints", json={"url": url, "event_types": ["transaction.created"]}
            )
            assert refused.status_code == 422, (url, refused.text)
            assert refused.json()["code"] == "unsafe_url", (url, refused.text)
        listed = api.get("/v1/webhook-endpoints")
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"] == []


def test_operator_key_names_the_ledger(tenant: Tenant, admin: httpx.Client, server: Server) -> None:
    url = "http://127.0.0.1:9/operator"
    unnamed = admin.post("/v1/webhook-endpoints", json={"url": url, "event_types": ["*"]})
    assert unnamed.status_code == 422, unnamed.text
    unknown = admin.post(
        "/v1/webhook-endpoints",
        json={
            "url": url,
            "event_types": ["*"],
            "ledger_id": "00000000-0000-7000-8000-000000000000",
        },
    )
    assert unknown.status_code == 404, unknown.text
    made = admin.post(
        "/v1/webhook-endpoints",
        json={"url": url, "event_types": ["*"], "ledger_id": tenant.ledger_id},
    )
    assert made.status_code == 201, made.text
    assert made.json()["ledger_id"] == tenant.ledger_id
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tenant.keys['read']}"}
    ) as own:
        listed = own.get("/v1/webhook-endpoints").json()["data"]
    assert [e["id"] for e in listed] == [made.json()["id"]]
    deleted = admin.delete(f"/v1/webhook-endpoints/{made.json()['id']}")
    assert deleted.status_code == 204, deleted.text


def test_invalid_endpoint_bodies_are_refused(tenant: Tenant, server: Server) -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tenant.keys['admin']}"}
    ) as api:
        for body in (
            {"url": "http://127.0.0.1:1/x", "event_types": []},
            {"url": "http://127.0.0.1:1/x", "event_types": ["transaction.exploded"]},
            {"url": "http://127.0.0.1:1/x"},
            {"event_types": ["*"]},
            {"url": "", "event_types": ["*"]},
            {"url": "http://127.0.0.1:1/x", "event_types": ["*"], "secret": "mine"},
        ):
            refused = api.post("/v1/webhook-endpoints", json=body)
            assert refused.status_code == 422, (body, refused.text)
        assert api.get("/v1/webhook-endpoints").json()["data"] == []


def test_tenants_are_kept_apart(
    hooks: Hooks,
    receiver: Receiver,
    admin: httpx.Client,
    server: Server,
    db: psycopg.Connection[Any],
) -> None:
    path, url = receiver.new_path()
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 3)
    [delivery] = hooks.wait_deliveries(endpoint["id"], all_settled(1))
    base = f"/v1/webhook-endpoints/{endpoint['id']}"

    other = new_tenant(admin, server)
    try:
        for scope, key in other.keys.items():
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}
            ) as stranger:
                calls = [
                    stranger.get(base),
                    stranger.delete(base),
                    stranger.get(f"{base}/deliveries"),
                    stranger.post(f"{base}/rotate-secret", json={"overlap_s": 0}),
                    stranger.post(f"{base}/deliveries/{delivery['id']}/redeliver"),
                ]
                # A read or write key is refused admin calls before anything is looked up;
                # whatever the scope, nothing about the endpoint shows.
                for call in calls:
                    assert call.status_code in (403, 404), (scope, call.request, call.text)
                if scope == "admin":
                    assert [c.status_code for c in calls] == [404] * 5
                else:
                    assert calls[0].status_code == 404
                    assert calls[2].status_code == 404
                assert stranger.get("/v1/webhook-endpoints").json()["data"] == []
                listing = stranger.get(
                    "/v1/webhook-endpoints", params={"ledger_id": hooks.tenant.ledger_id}
                )
                assert listing.status_code == 404, listing.text
                if scope == "admin":
                    foreign = stranger.post(
                        "/v1/webhook-endpoints",
                        json={
                            "url": url,
                            "event_types": ["*"],
                            "ledger_id": hooks.tenant.ledger_id,
                        },
                    )
                    assert foreign.status_code == 404, foreign.text
    finally:
        other.client.close()

    # Nothing the stranger tried had an effect: same secret, still listed, nothing resent.
    assert hooks.api.get(base).status_code == 200
    assert hooks.api.get(base).json()["previous_secret_expires_at"] is None
    assert hooks.deliveries(endpoint["id"]) == [delivery]
    hooks.tenant.transfer(debit, credit, 4)
    got = receiver.wait(path, at_least(2))
    assert len(got) == 2
    verify(got[1].body, got[1].headers["moneta-signature"], endpoint["secret"])

    # The tenant's own lesser keys: read may look but not create or delete; write neither.
    for scope in ("read", "write"):
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {hooks.tenant.keys[scope]}"}
        ) as own:
            made = own.post("/v1/webhook-endpoints", json={"url": url, "event_types": ["*"]})
            assert made.status_code == 403, (scope, made.text)
            assert own.get(base).status_code == 200
            assert own.get(f"{base}/deliveries").status_code == 200
            assert own.delete(base).status_code == 403
            rotated = own.post(f"{base}/rotate-secret", json={"overlap_s": 0})
            assert rotated.status_code == 403
            redo = own.post(f"{base}/deliveries/{delivery['id']}/redeliver")
            assert redo.status_code == 403
    assert [e["id"] for e in hooks.api.get("/v1/webhook-endpoints").json()["data"]] == [
        endpoint["id"]
    ]

    # Deleted: gone from the API, and nothing more is sent. A second, live endpoint shows
    # when the fan-out has passed the next event.
    deleted = hooks.api.delete(base)
    assert deleted.status_code == 204, deleted.text
    assert hooks.api.delete(base).status_code == 404
    assert hooks.api.get(base).status_code == 404
    assert hooks.api.get(f"{base}/deliveries").status_code == 404
    assert hooks.api.get("/v1/webhook-endpoints").json()["data"] == []
    control_path, control_url = receiver.new_path()
    control = hooks.create(control_url, ["transaction.created"])
    hooks.tenant.transfer(debit, credit, 5)
    hooks.wait_deliveries(control["id"], all_settled(1))
    assert len(receiver.wait(control_path, at_least(1))) == 1
    assert len(receiver.received(path)) == 2
    rows = db.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = %s", (endpoint["id"],)
    ).fetchone()
    assert rows == (2,)


def test_deleting_an_endpoint_stops_its_retries(
    hooks: Hooks, receiver: Receiver, db: psycopg.Connection[Any]
) -> None:
    path, url = receiver.new_path(then=Answer(500, delay_s=0.3))
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    hooks.tenant.transfer(debit, credit, 3)
    receiver.wait(path, at_least(1))
    deleted = hooks.api.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert deleted.status_code == 204, deleted.text
    stopped = time.monotonic()

    deadline = time.monotonic() + 10
    row: tuple[Any, ...] | None = None
    while time.monotonic() < deadline:
        row = db.execute(
            """SELECT status, last_error FROM webhook_deliveries WHERE endpoint_id = %s""",
            (endpoint["id"],),
        ).fetchone()
        if row and row[0] != "pending":
            break
        time.sleep(0.05)
    assert row == ("dead", "the endpoint was deleted")
    # At most the attempt already under way when the endpoint was deleted reached it.
    late = [r for r in receiver.received(path) if r.at > stopped]
    assert late == []


def test_no_duplicates_in_normal_operation(hooks: Hooks, receiver: Receiver) -> None:
    transfers = 20
    path, url = receiver.new_path()
    endpoint = hooks.create(url, ["transaction.created"])
    debit, credit = hooks.funded_pair()
    ids = [hooks.tenant.transfer(debit, credit, n + 1)["id"] for n in range(transfers)]

    deliveries = hooks.wait_deliveries(endpoint["id"], all_settled(transfers))
    assert len(deliveries) == transfers
    assert all(d["attempts"] == 1 for d in deliveries), [
        d for d in deliveries if d["attempts"] != 1
    ]
    deliveries.sort(key=lambda d: d["event_sequence"])
    event_ids = [d["event_id"] for d in deliveries]
    assert len(set(event_ids)) == transfers
    events = [e for e in hooks.events() if e["type"] == "transaction.created"]
    assert [e["id"] for e in events] == event_ids
    assert [e["sequence"] for e in events] == [d["event_sequence"] for d in deliveries]

    got = receiver.wait(path, at_least(transfers))
    time.sleep(0.3)  # a few dispatcher passes: room for a duplicate to show, if any
    got = receiver.received(path)
    seen = [verify(r.body, r.headers["moneta-signature"], endpoint["secret"]) for r in got]
    assert sorted(e["id"] for e in seen) == sorted(event_ids)
    by_sequence = sorted(seen, key=lambda e: int(e["sequence"]))
    assert [e["id"] for e in by_sequence] == event_ids
    assert [e["data"]["id"] for e in by_sequence] == ids
    assert {r.headers["moneta-delivery-id"] for r in got} == {d["id"] for d in deliveries}
