"""Reversals: a new posted transaction that undoes the original, at most once."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.conftest import Tenant, assert_ledger_invariants, ledger_snapshot


def test_reverse_undoes_and_links_both_ways(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    cash = tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    original = tenant.transfer("cash", "alice", 250)
    reversed_ = tenant.client.post(f"/v1/transactions/{original['id']}/reverse")
    assert reversed_.status_code == 201, reversed_.text
    reversal = reversed_.json()
    assert reversal["status"] == "posted"
    assert reversal["reverses_id"] == original["id"]
    assert reversal["postings"] == [
        {"debit": alice["id"], "credit": cash["id"], "amount": 250, "posted_amount": 250}
    ]
    again = tenant.client.get(f"/v1/transactions/{original['id']}").json()
    assert again["reversed_by_id"] == reversal["id"]
    assert tenant.balance(alice["id"])["posted"] == 0
    assert tenant.balance(cash["id"])["posted"] == 0
    assert_ledger_invariants(db, tenant.ledger_id)


def test_reverse_at_most_once(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    original = tenant.transfer("cash", "alice", 250)
    first = tenant.client.post(f"/v1/transactions/{original['id']}/reverse").json()
    before = ledger_snapshot(db, tenant.ledger_id)
    twice = tenant.client.post(f"/v1/transactions/{original['id']}/reverse")
    assert twice.status_code == 409
    assert twice.json()["code"] == "transaction_already_reversed"
    of_reversal = tenant.client.post(f"/v1/transactions/{first['id']}/reverse")
    assert of_reversal.status_code == 409
    assert of_reversal.json()["code"] == "transaction_is_reversal"
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_reverse_respects_overdraft_limits(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.account("bob")
    deposit = tenant.transfer("cash", "alice", 100)
    tenant.transfer("alice", "bob", 100)  # alice spent it
    before = ledger_snapshot(db, tenant.ledger_id)
    refused = tenant.client.post(f"/v1/transactions/{deposit['id']}/reverse")
    assert refused.status_code == 422
    assert refused.json()["code"] == "insufficient_funds"
    assert ledger_snapshot(db, tenant.ledger_id) == before


def test_only_posted_transactions_reverse(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    hold = tenant.transfer("cash", "alice", 5, pending=True)
    refused = tenant.client.post(f"/v1/transactions/{hold['id']}/reverse")
    assert refused.status_code == 409
    assert refused.json()["code"] == "transaction_not_posted"


def test_partially_posted_reverses_the_posted_amount(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    hold = tenant.transfer("cash", "alice", 500, pending=True)
    tenant.client.post(f"/v1/transactions/{hold['id']}/post", json={"amount": 200})
    reversal = tenant.client.post(f"/v1/transactions/{hold['id']}/reverse").json()
    assert reversal["postings"][0]["amount"] == 200
    assert tenant.balance(alice["id"])["posted"] == 0
