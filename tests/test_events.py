"""Every state change writes its event in the same transaction; the sequencer numbers
them per ledger in commit order; GET /v1/events reads them."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Tenant


def _page_all(tenant: Tenant) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 3}
        if after:
            params["after"] = after
        page = tenant.client.get("/v1/events", params=params).json()
        if not page["data"]:
            return events
        events += page["data"]
        after = page["next_cursor"]
    raise AssertionError("event paging did not end")


def wait_events(tenant: Tenant, count: int, timeout_s: float = 15) -> list[dict[str, Any]]:
    """Events appear once the sequencer has numbered them (about 50 ms after commit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = _page_all(tenant)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_events_follow_every_change_in_order(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 10)
    failed = tenant.transfer("alice", "cash", 1000, expect=422)
    assert failed["code"] == "insufficient_funds"
    hold = tenant.transfer("cash", "alice", 5, pending=True)
    tenant.client.post(f"/v1/transactions/{hold['id']}/void")

    events = wait_events(tenant, 6)
    assert [e["type"] for e in events] == [
        "ledger.created",
        "account.created",
        "account.created",
        "transaction.created",
        "transaction.pending",
        "transaction.voided",
    ]
    assert len({e["id"] for e in events}) == len(events)
    assert all(e["ledger_id"] == tenant.ledger_id for e in events)
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1]["data"]["id"] == hold["id"]
    assert events[-1]["data"]["status"] == "voided"


def test_cursor_resumes_without_repeats(tenant: Tenant) -> None:
    tenant.account("a")
    wait_events(tenant, 2)
    first = tenant.client.get("/v1/events").json()
    tenant.account("b")
    wait_events(tenant, 3)
    more = tenant.client.get("/v1/events", params={"after": first["next_cursor"]}).json()
    assert [e["type"] for e in more["data"]] == ["account.created"]
    assert more["data"][0]["data"]["code"] == "b"


def test_transaction_events_carry_balances_after(tenant: Tenant) -> None:
    cash = tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    tenant.transfer("cash", "alice", 10)
    hold = tenant.transfer("alice", "cash", 4, pending=True)
    tenant.client.post(f"/v1/transactions/{hold['id']}/post")
    events = wait_events(tenant, 6)
    by_type = {e["type"]: e for e in events}
    balances = {
        b["account_id"]: b["posted_after"] for b in by_type["transaction.created"]["balances"]
    }
    # Limit-free accounts take no lock, so they have no exact figure (as in the entries API).
    assert balances == {alice["id"]: 10, cash["id"]: None}
    pending = {
        b["account_id"]: b["posted_after"] for b in by_type["transaction.pending"]["balances"]
    }
    assert pending[alice["id"]] == 10  # a hold does not move the posted balance
    posted = {b["account_id"]: b["posted_after"] for b in by_type["transaction.posted"]["balances"]}
    assert posted[alice["id"]] == 6
    assert "balances" not in by_type["account.created"]
    # A redelivery (a second read) carries the same figures.
    assert wait_events(tenant, 6)[3]["balances"] == events[3]["balances"]
