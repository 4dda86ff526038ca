"""Transfers through the API: balances, codes or ids, multi-posting, currencies."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.conftest import Tenant, assert_ledger_invariants, ledger_snapshot


def test_transfer_moves_money_and_balances(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    cash = tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    bob = tenant.account("bob")

    deposit = tenant.transfer("cash", "alice", 1000)
    assert deposit["status"] == "posted"
    assert deposit["postings"] == [
        {"debit": cash["id"], "credit": alice["id"], "amount": 1000, "posted_amount": 1000}
    ]
    tenant.transfer(alice["id"], bob["id"], 300)  # by id, not code

    assert tenant.balance(alice["id"]) == {
        "currency": "USD",
        "posted": 700,
        "available": 700,
        "pending_debits": 0,
        "pending_credits": 0,
        "posted_debits": 300,
        "posted_credits": 1000,
        "version": 2,
    }
    assert tenant.balance(bob["id"])["posted"] == 300
    assert tenant.balance(cash["id"])["posted"] == 1000
    assert_ledger_invariants(db, tenant.ledger_id)


def test_multi_posting_transaction_touching_one_account_twice(
    tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    tenant.account("bob")
    tenant.account("fees")
    tenant.transfer("cash", "alice", 1000)
    response = tenant.client.post(
        "/v1/transactions",
        json={
            "ledger_id": tenant.ledger_id,
            "postings": [
                {"debit": "alice", "credit": "bob", "amount": 600},
                {"debit": "alice", "credit": "fees", "amount": "6"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    assert tenant.balance(alice["id"])["posted"] == 394
    entries = tenant.client.get(f"/v1/accounts/{alice['id']}/entries").json()["data"]
    # Newest first, with the running balance after each entry.
    assert [(e["direction"], e["amount"], e["balance_after"]) for e in entries] == [
        ("debit", 6, 394),
        ("debit", 600, 400),
        ("credit", 1000, 1000),
    ]
    assert_ledger_invariants(db, tenant.ledger_id)


def test_amounts_beyond_64_bits_are_exact(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("mint", normal_balance="debit", overdraft_limit=None)
    vault = tenant.account("vault")
    big = 2**127 + 12345
    tenant.transfer("mint", "vault", big)
    tenant.transfer("mint", "vault", str(2**64))  # type: ignore[arg-type]
    assert tenant.balance(vault["id"])["posted"] == big + 2**64
    assert_ledger_invariants(db, tenant.ledger_id)


def test_insufficient_funds_changes_nothing(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.account("bob")
    tenant.transfer("cash", "alice", 100)
    before = ledger_snapshot(db, tenant.ledger_id)
    problem = tenant.transfer("alice", "bob", 101, expect=422)
    assert problem["code"] == "insufficient_funds"
    assert problem["status"] == 422
    assert "index" not in problem  # only batches name an item
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_overdraft_limit_allows_going_negative_down_to_the_limit(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    card = tenant.account("card", overdraft_limit=500)
    tenant.account("merchant")
    tenant.transfer("card", "merchant", 500)
    assert tenant.balance(card["id"])["available"] == -500
    assert tenant.transfer("card", "merchant", 1, expect=422)["code"] == "insufficient_funds"
    # Money coming in is always accepted, even while below zero.
    tenant.transfer("cash", "card", 100)
    assert tenant.balance(card["id"])["posted"] == -400


def test_currency_mismatch_and_same_account_are_rejected(
    tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    tenant.account("usd", normal_balance="debit", overdraft_limit=None)
    tenant.account("eur", currency="EUR")
    before = ledger_snapshot(db, tenant.ledger_id)
    assert tenant.transfer("usd", "eur", 5, expect=422)["code"] == "currency_mismatch"
    assert tenant.transfer("usd", "usd", 5, expect=422)["code"] == "same_account"
    assert tenant.transfer("usd", "nobody", 5, expect=422)["code"] == "account_not_found"
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_external_id_is_unique_per_ledger(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 10, external_id="bank-ref-1")
    before = ledger_snapshot(db, tenant.ledger_id)
    problem = tenant.transfer("cash", "alice", 10, expect=409, external_id="bank-ref-1")
    assert problem["code"] == "duplicate_external_id"
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_get_and_list_transactions_with_filters(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    tenant.account("bob")
    first = tenant.transfer("cash", "alice", 10, metadata={"order": "A"})
    second = tenant.transfer("cash", "bob", 20, metadata={"order": "B"})
    third = tenant.transfer("alice", "bob", 5, metadata={"order": "A"})

    got = tenant.client.get(f"/v1/transactions/{first['id']}")
    assert got.status_code == 200
    assert got.json() == first

    by_meta = tenant.client.get("/v1/transactions", params={"metadata.order": "A"}).json()
    assert [t["id"] for t in by_meta["data"]] == [third["id"], first["id"]]
    by_account = tenant.client.get("/v1/transactions", params={"account_id": alice["id"]}).json()
    assert [t["id"] for t in by_account["data"]] == [third["id"], first["id"]]

    ids = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = tenant.client.get("/v1/transactions", params=params).json()
        ids += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == [third["id"], second["id"], first["id"]]
