"""Pending transactions: reserve, post (in full or less), void, expire."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from tests.conftest import Tenant, assert_ledger_invariants, ledger_snapshot


def _setup(tenant: Tenant) -> tuple[dict[str, Any], dict[str, Any]]:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    merchant = tenant.account("merchant")
    tenant.transfer("cash", "alice", 1000)
    return alice, merchant


def test_pending_reserves_available_but_not_posted(
    tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    alice, merchant = _setup(tenant)
    hold = tenant.transfer("alice", "merchant", 400, pending=True)
    assert hold["status"] == "pending"
    assert hold["postings"][0]["posted_amount"] is None
    assert tenant.balance(alice["id"]) | {"version": 0} == {
        "currency": "USD",
        "posted": 1000,
        "available": 600,
        "pending_debits": 400,
        "pending_credits": 0,
        "posted_debits": 0,
        "posted_credits": 1000,
        "version": 0,
    }
    # Pending inflows do not count as available.
    assert tenant.balance(merchant["id"])["available"] == 0
    assert tenant.balance(merchant["id"])["pending_credits"] == 400
    # The reservation is enforced: only 600 is left to spend.
    assert tenant.transfer("alice", "merchant", 601, expect=422)["code"] == "insufficient_funds"
    assert_ledger_invariants(db, tenant.ledger_id)


def test_post_in_full(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    alice, merchant = _setup(tenant)
    hold = tenant.transfer("alice", "merchant", 400, pending=True)
    posted = tenant.client.post(f"/v1/transactions/{hold['id']}/post")
    assert posted.status_code == 200, posted.text
    assert posted.json()["status"] == "posted"
    assert posted.json()["postings"][0]["posted_amount"] == 400
    assert tenant.balance(alice["id"])["posted"] == 600
    assert tenant.balance(alice["id"])["available"] == 600
    assert tenant.balance(alice["id"])["pending_debits"] == 0
    assert tenant.balance(merchant["id"])["posted"] == 400
    assert_ledger_invariants(db, tenant.ledger_id)


def test_post_a_smaller_amount_releases_the_rest(
    tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    alice, merchant = _setup(tenant)
    hold = tenant.transfer("alice", "merchant", 400, pending=True)
    posted = tenant.client.post(f"/v1/transactions/{hold['id']}/post", json={"amount": 150})
    assert posted.status_code == 200, posted.text
    assert posted.json()["postings"][0] | {} == {
        "debit": alice["id"],
        "credit": merchant["id"],
        "amount": 400,
        "posted_amount": 150,
    }
    assert tenant.balance(alice["id"])["posted"] == 850
    assert tenant.balance(alice["id"])["available"] == 850
    assert tenant.balance(merchant["id"])["posted"] == 150
    assert_ledger_invariants(db, tenant.ledger_id)


def test_post_more_than_reserved_is_refused(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    _setup(tenant)
    hold = tenant.transfer("alice", "merchant", 400, pending=True)
    before = ledger_snapshot(db, tenant.ledger_id)
    refused = tenant.client.post(f"/v1/transactions/{hold['id']}/post", json={"amount": 401})
    assert refused.status_code == 422
    assert refused.json()["code"] == "invalid_post_amount"
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_void_releases_and_wrong_state_is_409(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    alice, merchant = _setup(tenant)
    hold = tenant.transfer("alice", "merchant", 400, pending=True)
    voided = tenant.client.post(f"/v1/transactions/{hold['id']}/void")
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    assert tenant.balance(alice["id"])["available"] == 1000
    assert tenant.balance(merchant["id"])["pending_credits"] == 0

    before = ledger_snapshot(db, tenant.ledger_id)
    for action in ("post", "void"):
        again = tenant.client.post(f"/v1/transactions/{hold['id']}/{action}")
        assert again.status_code == 409, again.text
        assert again.json()["code"] == "transaction_not_pending"
    posted = tenant.transfer("cash", "alice", 1)
    assert tenant.client.post(f"/v1/transactions/{posted['id']}/void").status_code == 409
    assert ledger_snapshot(db, tenant.ledger_id)["transactions"][:-1] == before["transactions"]
    assert_ledger_invariants(db, tenant.ledger_id)


def test_expires_in_lets_the_worker_expire_it(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    alice, _ = _setup(tenant)
    hold = tenant.transfer("alice", "merchant", 400, pending=True, expires_in=1)
    assert hold["expires_at"] is not None
    deadline = time.monotonic() + 15
    status = "pending"
    while status == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = tenant.client.get(f"/v1/transactions/{hold['id']}").json()["status"]
    assert status == "expired"
    assert tenant.balance(alice["id"])["available"] == 1000
    late = tenant.client.post(f"/v1/transactions/{hold['id']}/post")
    assert late.status_code == 409
    assert late.json()["code"] == "transaction_not_pending"
    assert_ledger_invariants(db, tenant.ledger_id)


def test_multi_posting_partial_post(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    alice, merchant = _setup(tenant)
    fees = tenant.account("fees")
    hold = tenant.client.post(
        "/v1/transactions",
        json={
            "ledger_id": tenant.ledger_id,
            "pending": True,
            "postings": [
                {"debit": "alice", "credit": "merchant", "amount": 300},
                {"debit": "alice", "credit": "fees", "amount": 30},
            ],
        },
    ).json()
    bad = tenant.client.post(f"/v1/transactions/{hold['id']}/post", json={"amounts": [1]})
    assert bad.status_code == 422
    posted = tenant.client.post(f"/v1/transactions/{hold['id']}/post", json={"amounts": [250, 0]})
    assert posted.status_code == 200, posted.text
    assert [p["posted_amount"] for p in posted.json()["postings"]] == [250, 0]
    assert tenant.balance(alice["id"])["posted"] == 750
    assert tenant.balance(merchant["id"])["posted"] == 250
    assert tenant.balance(fees["id"])["posted"] == 0
    assert_ledger_invariants(db, tenant.ledger_id)
