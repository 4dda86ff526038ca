"""POST /v1/transactions/batch: atomic and independent modes, in-batch ordering, replay."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import psycopg

from tests.conftest import Server, Tenant, assert_ledger_invariants, ledger_snapshot


def _tx(debit: str, credit: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"postings": [{"debit": debit, "credit": credit, "amount": amount}], **extra}


def _batch(tenant: Tenant, items: list[dict[str, Any]], atomic: bool, **kw: Any) -> httpx.Response:
    body = {"ledger_id": tenant.ledger_id, "atomic": atomic, "transactions": items}
    return tenant.client.post("/v1/transactions/batch", json=body, **kw)


def _setup(tenant: Tenant) -> dict[str, dict[str, Any]]:
    return {
        "cash": tenant.account("cash", normal_balance="debit", overdraft_limit=None),
        "alice": tenant.account("alice"),
        "bob": tenant.account("bob"),
        "fees": tenant.account("fees", overdraft_limit=None),
        "euro": tenant.account("euro", currency="EUR"),
    }


def test_atomic_batch_applies_all_in_order(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    acc = _setup(tenant)
    response = _batch(
        tenant,
        [_tx("cash", "alice", 100), _tx("alice", "bob", 60), _tx("bob", "alice", 10)],
        atomic=True,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["atomic"], body["succeeded"], body["failed"]) == (True, 3, 0)
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert [r["status"] for r in body["results"]] == [201, 201, 201]
    assert body["results"][1]["transaction"]["postings"][0]["amount"] == 60
    got = tenant.client.get(f"/v1/transactions/{body['results'][2]['transaction']['id']}")
    assert got.json() == body["results"][2]["transaction"]
    assert tenant.balance(acc["alice"]["id"])["posted"] == 50
    assert tenant.balance(acc["bob"]["id"])["posted"] == 50
    entries = tenant.client.get(f"/v1/accounts/{acc['alice']['id']}/entries").json()["data"]
    assert [e["balance_after"] for e in entries] == [50, 40, 100]
    assert_ledger_invariants(db, tenant.ledger_id)


def test_atomic_batch_fails_whole_and_names_the_item(
    tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    _setup(tenant)
    tenant.transfer("cash", "alice", 100)
    before = ledger_snapshot(db, tenant.ledger_id)
    response = _batch(
        tenant,
        [_tx("alice", "bob", 60), _tx("alice", "bob", 30), _tx("alice", "bob", 20)],
        atomic=True,
    )
    assert response.status_code == 422
    problem = response.json()
    assert (problem["code"], problem["index"]) == ("insufficient_funds", 2)
    assert response.headers["content-type"] == "application/problem+json"
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_independent_items_fail_alone_in_order(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    acc = _setup(tenant)
    tenant.transfer("cash", "alice", 100)
    items = [
        _tx("alice", "bob", 70),  # ok: 30 left
        _tx("alice", "euro", 1),  # currency
        _tx("alice", "alice", 1),  # same account
        _tx("alice", "bob", 40),  # funds item 0 spent
        _tx("nobody", "bob", 1),  # unknown account
        _tx("alice", "bob", 30, external_id="ref-1"),  # ok: 0 left
        _tx("cash", "alice", 5, external_id="ref-1"),  # duplicate within the batch
        _tx("cash", "alice", 5, pending=True),  # ok: a reservation
    ]
    response = _batch(tenant, items, atomic=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (3, 5)
    outcome = [(r["status"], (r.get("error") or {}).get("code")) for r in body["results"]]
    assert outcome == [
        (201, None),
        (422, "currency_mismatch"),
        (422, "same_account"),
        (422, "insufficient_funds"),
        (422, "account_not_found"),
        (201, None),
        (409, "duplicate_external_id"),
        (201, None),
    ]
    assert body["results"][7]["transaction"]["status"] == "pending"
    assert tenant.balance(acc["alice"]["id"])["posted"] == 0
    assert tenant.balance(acc["alice"]["id"])["pending_credits"] == 5
    assert tenant.balance(acc["bob"]["id"])["posted"] == 100
    # The batch's pending item settles like any other.
    pending_id = body["results"][7]["transaction"]["id"]
    assert tenant.client.post(f"/v1/transactions/{pending_id}/post").status_code == 200
    assert tenant.balance(acc["alice"]["id"])["posted"] == 5
    # An external_id already in the ledger is refused too.
    again = _batch(tenant, [_tx("cash", "alice", 1, external_id="ref-1")], atomic=False)
    assert again.json()["results"][0]["error"]["code"] == "duplicate_external_id"
    assert_ledger_invariants(db, tenant.ledger_id)


def test_batch_idempotent_replay(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    acc = _setup(tenant)
    items = [_tx("cash", "alice", 7), _tx("cash", "bob", 8)]
    headers = {"Idempotency-Key": "batch-1"}
    first = _batch(tenant, items, atomic=False, headers=headers)
    assert first.status_code == 200
    before = ledger_snapshot(db, tenant.ledger_id)
    replay = _batch(tenant, items, atomic=False, headers=headers)
    assert replay.status_code == 200
    assert replay.content == first.content
    assert ledger_snapshot(db, tenant.ledger_id) == before
    other = _batch(tenant, items[:1], atomic=False, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert tenant.balance(acc["alice"]["id"])["posted"] == 7


def test_hot_account_in_every_item_stays_exact(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    acc = _setup(tenant)
    tenant.transfer("cash", "alice", 1_000_000)
    items = [
        {
            "postings": [
                {"debit": "alice", "credit": "bob", "amount": 10},
                {"debit": "alice", "credit": "fees", "amount": 1},
            ]
        }
        for _ in range(500)
    ]
    assert _batch(tenant, items, atomic=True).status_code == 201
    assert tenant.balance(acc["fees"]["id"])["posted"] == 500
    assert tenant.balance(acc["alice"]["id"])["posted"] == 1_000_000 - 5500
    # The fee account got one unlocked delta row for the whole batch, not 500 updates.
    deltas = db.execute(
        "SELECT count(*) FROM balance_deltas WHERE ledger_id = %s AND account_id = %s",
        (tenant.ledger_id, acc["fees"]["id"]),
    ).fetchone()
    assert deltas is not None
    assert deltas[0] <= 1  # 0 once the worker folded it
    fees_entries = tenant.client.get(f"/v1/accounts/{acc['fees']['id']}/entries").json()["data"]
    assert {e["balance_after"] for e in fees_entries} == {None}
    assert_ledger_invariants(db, tenant.ledger_id)


def test_ten_thousand_items(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    acc = _setup(tenant)
    response = _batch(tenant, [_tx("cash", "alice", 1) for _ in range(10_000)], atomic=True)
    assert response.status_code == 201, response.text[:500]
    assert response.json()["succeeded"] == 10_000
    assert tenant.balance(acc["alice"]["id"])["posted"] == 10_000
    too_many = _batch(tenant, [_tx("cash", "alice", 1) for _ in range(10_001)], atomic=True)
    assert too_many.status_code == 422
    assert_ledger_invariants(db, tenant.ledger_id)


def test_conservation_after_concurrent_mixed_load(
    tenant: Tenant, server: Server, db: psycopg.Connection[Any]
) -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    _setup(tenant)
    wallets = [f"w{i}" for i in range(20)]
    for code in wallets:
        tenant.account(code)
    funding = [_tx("cash", code, 1000) for code in wallets]
    assert _batch(tenant, funding, atomic=True).status_code == 201
    headers = {"Authorization": f"Bearer {tenant.keys['write']}"}

    def transfer() -> dict[str, Any]:
        a, b = rng.sample(wallets, 2)
        return {
            "postings": [
                {"debit": a, "credit": b, "amount": rng.randint(1, 300)},
                {"debit": a, "credit": "fees", "amount": 1},
            ]
        }

    async def worker(client: httpx.AsyncClient, rounds: int) -> list[int]:
        statuses = []
        for _ in range(rounds):
            if rng.random() < 0.3:
                body = {
                    "ledger_id": tenant.ledger_id,
                    "atomic": False,
                    "transactions": [transfer() for _ in range(rng.randint(1, 20))],
                }
                response = await client.post("/v1/transactions/batch", json=body, headers=headers)
            else:
                body = {"ledger_id": tenant.ledger_id, **transfer()}
                response = await client.post("/v1/transactions", json=body, headers=headers)
            statuses.append(response.status_code)
        return statuses

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            results = await asyncio.gather(*(worker(client, 15) for _ in range(16)))
        return [status for result in results for status in result]

    statuses = asyncio.run(run())
    assert set(statuses) <= {200, 201, 422}, statuses
    assert statuses.count(200) + statuses.count(201) > 0
    assert_ledger_invariants(db, tenant.ledger_id)
