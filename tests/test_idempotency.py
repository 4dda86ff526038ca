"""Idempotency-Key: at most once, replay returns the first answer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg

from tests.conftest import Server, Tenant, ledger_snapshot


def _body(tenant: Tenant, amount: int) -> dict[str, Any]:
    return {
        "ledger_id": tenant.ledger_id,
        "postings": [{"debit": "cash", "credit": "alice", "amount": amount}],
    }


def test_replay_returns_the_stored_response(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = tenant.client.post("/v1/transactions", json=_body(tenant, 70), headers=key)
    assert first.status_code == 201
    before = ledger_snapshot(db, tenant.ledger_id)
    replay = tenant.client.post("/v1/transactions", json=_body(tenant, 70), headers=key)
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert ledger_snapshot(db, tenant.ledger_id) == before
    assert tenant.balance(alice["id"])["posted"] == 70


def test_same_key_other_body_is_422(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    key = {"Idempotency-Key": "order-17"}
    assert tenant.client.post("/v1/transactions", json=_body(tenant, 1), headers=key).is_success
    before = ledger_snapshot(db, tenant.ledger_id)
    other = tenant.client.post("/v1/transactions", json=_body(tenant, 2), headers=key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # Same key on another endpoint is another request too.
    elsewhere = tenant.client.post(
        "/v1/accounts",
        json={"ledger_id": tenant.ledger_id, "code": "x", "currency": "USD"},
        headers=key,
    )
    assert elsewhere.status_code == 422
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_a_business_failure_is_replayed_too(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.account("bob")
    key = {"Idempotency-Key": "pay-bob-1"}
    body = {
        "ledger_id": tenant.ledger_id,
        "postings": [{"debit": "alice", "credit": "bob", "amount": 5}],
    }
    first = tenant.client.post("/v1/transactions", json=body, headers=key)
    assert first.status_code == 422
    tenant.transfer("cash", "alice", 100)  # funds arrive, but the key already has its answer
    replay = tenant.client.post("/v1/transactions", json=body, headers=key)
    assert replay.status_code == 422
    assert replay.content == first.content


def test_keys_are_scoped_per_api_key(tenant: Tenant, server: Server) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    key = {"Idempotency-Key": "shared-name"}
    assert tenant.client.post("/v1/transactions", json=_body(tenant, 3), headers=key).is_success
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {tenant.keys['admin']}"}
    ) as other:
        response = other.post("/v1/transactions", json=_body(tenant, 3), headers=key)
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert tenant.balance(alice["id"])["posted"] == 6


def test_concurrent_same_key_executes_once(tenant: Tenant, server: Server) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    body = _body(tenant, 10)
    headers = {"Authorization": f"Bearer {tenant.keys['write']}", "Idempotency-Key": "race-1"}

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/v1/transactions", json=body, headers=headers) for _ in range(20))
            )

    responses = asyncio.run(fire())
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert all(
        r.json()["code"] == "idempotency_key_in_flight" for r in responses if r.status_code == 409
    )
    assert tenant.balance(alice["id"])["posted"] == 10
