"""Account history with balance_after, point-in-time balances, account listing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Tenant


def test_entries_newest_first_with_cursor(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    for amount in (1, 2, 3, 4, 5):
        tenant.transfer("cash", "alice", amount)
    seen: list[tuple[int, int]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = tenant.client.get(f"/v1/accounts/{alice['id']}/entries", params=params).json()
        seen += [(e["amount"], e["balance_after"]) for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(5, 15), (4, 10), (3, 6), (2, 3), (1, 1)]


def test_balance_as_of_with_backdated_entries(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    now = datetime.now(UTC)
    jan = (now - timedelta(days=60)).isoformat()
    feb = (now - timedelta(days=30)).isoformat()
    tenant.transfer("cash", "alice", 100, effective_at=jan)
    tenant.transfer("cash", "alice", 20)
    tenant.transfer("cash", "alice", 5, effective_at=feb)

    def as_of(when: datetime) -> int:
        response = tenant.client.get(
            f"/v1/accounts/{alice['id']}/balance", params={"as_of": when.isoformat()}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["currency"] == "USD"
        posted: int = body["posted"]
        return posted

    assert as_of(now - timedelta(days=90)) == 0
    assert as_of(now - timedelta(days=45)) == 100
    assert as_of(now - timedelta(days=1)) == 105
    assert as_of(now + timedelta(seconds=5)) == 125
    # Without as_of: now.
    assert tenant.client.get(f"/v1/accounts/{alice['id']}/balance").json()["posted"] == 125


def test_list_accounts_by_code_and_metadata(tenant: Tenant) -> None:
    a = tenant.account("users:1:wallet", metadata={"user": "1", "tier": "gold"})
    b = tenant.account("users:2:wallet", metadata={"user": "2", "tier": "gold"})
    tenant.account("users:3:wallet", metadata={"user": "3", "tier": "basic"})

    def ids(params: dict[str, Any]) -> list[str]:
        response = tenant.client.get("/v1/accounts", params=params)
        assert response.status_code == 200, response.text
        return [acc["id"] for acc in response.json()["data"]]

    assert ids({"code": "users:2:wallet"}) == [b["id"]]
    assert ids({"metadata.tier": "gold"}) == [a["id"], b["id"]]
    assert ids({"metadata.tier": "gold", "metadata.user": "1"}) == [a["id"]]
    assert ids({"metadata.tier": "platinum"}) == []
    assert ids({"limit": 1, "metadata.tier": "gold"}) == [a["id"]]


def test_duplicate_code_is_409(tenant: Tenant) -> None:
    tenant.account("dup")
    again = tenant.client.post(
        "/v1/accounts", json={"ledger_id": tenant.ledger_id, "code": "dup", "currency": "USD"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_account_code"
