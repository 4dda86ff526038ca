"""Every state change writes its event in the same transaction; GET /v1/events reads them."""

from __future__ import annotations

from typing import Any

from tests.conftest import Tenant


def _all_events(tenant: Tenant) -> list[dict[str, Any]]:
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


def test_events_follow_every_change_in_order(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 10)
    failed = tenant.transfer("alice", "cash", 1000, expect=422)
    assert failed["code"] == "insufficient_funds"
    hold = tenant.transfer("cash", "alice", 5, pending=True)
    tenant.client.post(f"/v1/transactions/{hold['id']}/void")

    events = _all_events(tenant)
    assert [e["type"] for e in events] == [
        "ledger.created",
        "account.created",
        "account.created",
        "transaction.created",
        "transaction.created",
        "transaction.voided",
    ]
    assert len({e["id"] for e in events}) == len(events)
    assert all(e["ledger_id"] == tenant.ledger_id for e in events)
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(sequences)
    assert events[-1]["data"]["id"] == hold["id"]
    assert events[-1]["data"]["status"] == "voided"


def test_cursor_resumes_without_repeats(tenant: Tenant) -> None:
    tenant.account("a")
    first = tenant.client.get("/v1/events").json()
    tenant.account("b")
    more = tenant.client.get("/v1/events", params={"after": first["next_cursor"]}).json()
    assert [e["type"] for e in more["data"]] == ["account.created"]
    assert more["data"][0]["data"]["code"] == "b"
