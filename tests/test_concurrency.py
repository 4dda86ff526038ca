"""Overdraft checks hold under concurrency, through HTTP against a running server."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import psycopg

from tests.conftest import Server, Tenant, assert_ledger_invariants


def test_200_concurrent_debits_against_1000(
    tenant: Tenant, server: Server, db: psycopg.Connection[Any]
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    wallet = tenant.account("wallet")
    tenant.account("shop")
    tenant.transfer("cash", "wallet", 1000)
    body = {
        "ledger_id": tenant.ledger_id,
        "postings": [{"debit": "wallet", "credit": "shop", "amount": 10}],
    }
    headers = {"Authorization": f"Bearer {tenant.keys['write']}"}

    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/v1/transactions", json=body, headers=headers) for _ in range(200))
            )

    responses = asyncio.run(fire())
    outcomes = Counter(
        (r.status_code, r.json().get("code") if r.status_code != 201 else None) for r in responses
    )
    assert outcomes == {(201, None): 100, (422, "insufficient_funds"): 100}
    balance = tenant.balance(wallet["id"])
    assert balance["available"] == 0
    assert balance["posted"] == 0
    assert_ledger_invariants(db, tenant.ledger_id)


def test_opposite_transfers_do_not_deadlock(
    tenant: Tenant, server: Server, db: psycopg.Connection[Any]
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    a = tenant.account("a")
    b = tenant.account("b")
    tenant.transfer("cash", "a", 10_000)
    tenant.transfer("cash", "b", 10_000)
    headers = {"Authorization": f"Bearer {tenant.keys['write']}"}

    def body(debit: str, credit: str) -> dict[str, Any]:
        return {
            "ledger_id": tenant.ledger_id,
            "postings": [{"debit": debit, "credit": credit, "amount": 1}],
        }

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/transactions",
                        json=body("a", "b") if i % 2 else body("b", "a"),
                        headers=headers,
                    )
                    for i in range(200)
                )
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [201] * 200
    assert tenant.balance(a["id"])["posted"] == 10_000
    assert tenant.balance(b["id"])["posted"] == 10_000
    assert_ledger_invariants(db, tenant.ledger_id)
