"""Redis from the outside: per-key rate limits with RateLimit headers, API-key
verifications shared and revoked through Redis, and Redis going away while money moves."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio

from tests.conftest import (
    ROOT,
    Stack,
    Tenant,
    new_tenant,
    redis_stack_env,
    start_server,
    stop_server,
)

STACK_ENV = redis_stack_env  # read by conftest's isolated_stack


@pytest.fixture
def tenant(stack_tenant: Tenant) -> Tenant:
    return stack_tenant


def limited_key(stack: Stack, tenant: Tenant, per_second: float, burst: int) -> str:
    made = stack.admin.post(
        "/v1/api-keys",
        json={
            "scope": "read",
            "ledger_id": tenant.ledger_id,
            "rate_limit": {"per_second": per_second, "burst": burst},
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["rate_limit"] == {"per_second": per_second, "burst": burst}
    key: str = made.json()["key"]
    return key


def redis_command(url: str, *args: Any) -> Any:
    async def run() -> Any:
        async with redis.asyncio.Redis.from_url(url) as client:
            return await client.execute_command(*args)

    return asyncio.run(run())


def test_rate_limit_per_key_with_headers(isolated_stack: Stack, tenant: Tenant) -> None:
    key = limited_key(isolated_stack, tenant, per_second=1, burst=3)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{isolated_stack.server.url}/v1/events"
    answers = [httpx.get(url, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[0].headers["RateLimit-Policy"] == '"key";q=3;w=3'
    remaining = [int(a.headers["RateLimit"].split("r=")[1].split(";")[0]) for a in answers[:3]]
    assert remaining == sorted(remaining, reverse=True)
    refused = answers[3]
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert "RateLimit" in refused.headers
    # Another key of the same tenant has its own bucket.
    assert tenant.client.get("/v1/events").status_code == 200
    time.sleep(int(refused.headers["Retry-After"]))
    assert httpx.get(url, headers=headers).status_code == 200


def test_bad_rate_limits_are_refused(isolated_stack: Stack, tenant: Tenant) -> None:
    for limit in ({"per_second": 0, "burst": 1}, {"per_second": 1, "burst": 0}, {"burst": 1}):
        made = isolated_stack.admin.post(
            "/v1/api-keys",
            json={"scope": "read", "ledger_id": tenant.ledger_id, "rate_limit": limit},
        )
        assert made.status_code == 422, made.text


def test_verified_keys_are_shared_in_redis_and_revocation_drops_them(
    isolated_stack: Stack, tenant: Tenant, redis_url: str
) -> None:
    made = isolated_stack.admin.post(
        "/v1/api-keys", json={"scope": "read", "ledger_id": tenant.ledger_id}
    ).json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    url = f"{isolated_stack.server.url}/v1/events"
    assert httpx.get(url, headers=headers).status_code == 200
    cached = redis_command(redis_url, "GET", f"moneta:apikey:{made['id']}")
    assert cached is not None
    assert made["key"].split("_")[-1].encode() not in cached  # the hash, never the secret
    revoked = httpx.delete(
        f"{isolated_stack.server.url}/v1/api-keys/{made['id']}",
        headers={"Authorization": f"Bearer {tenant.keys['admin']}"},
    )
    assert revoked.status_code == 204
    assert redis_command(redis_url, "GET", f"moneta:apikey:{made['id']}") is None
    assert httpx.get(url, headers=headers).status_code == 401
    # Another tenant's admin cannot revoke it (404, like an unknown id).
    other = isolated_stack.admin.post(
        "/v1/api-keys", json={"scope": "read", "ledger_id": tenant.ledger_id}
    ).json()
    stranger = new_tenant(isolated_stack.admin, isolated_stack.server)
    try:
        denied = httpx.delete(
            f"{isolated_stack.server.url}/v1/api-keys/{other['id']}",
            headers={"Authorization": f"Bearer {stranger.keys['admin']}"},
        )
        assert denied.status_code == 404
        assert (
            httpx.get(url, headers={"Authorization": f"Bearer {other['key']}"}).status_code == 200
        )
    finally:
        stranger.client.close()


def _redis_script(action: str) -> None:
    subprocess.run(
        [str(ROOT / "scripts/services/redis.sh"), action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_redis_down_money_still_moves_and_readyz_says_degraded(
    isolated_stack: Stack, tenant: Tenant, workdir: Path
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    key = limited_key(isolated_stack, tenant, per_second=1000, burst=1000)
    closed = start_server(
        {**isolated_stack.env, "MONETA_RATE_LIMIT_FAIL_OPEN": "false"},
        workdir / f"closed-{uuid.uuid4().hex[:6]}.log",
    )
    try:
        ready = httpx.get(f"{isolated_stack.server.url}/readyz").json()
        assert ready["redis"] == "ok"
        _redis_script("stop")
        try:
            for _ in range(5):
                tenant.transfer("cash", "alice", 3)
            assert tenant.balance(alice["id"])["posted"] == 15
            ready = httpx.get(f"{isolated_stack.server.url}/readyz")
            assert ready.status_code == 200
            assert ready.json()["redis"] == "degraded"
            assert ready.json()["rate_limiting"] == "open"
            # Failing closed: refused with a clear code, nothing moved.
            refused = httpx.get(
                f"{closed.url}/v1/accounts/{alice['id']}",
                headers={"Authorization": f"Bearer {key}"},
            )
            assert refused.status_code == 503
            assert refused.json()["code"] == "rate_limiter_unavailable"
        finally:
            _redis_script("start")
        deadline = time.monotonic() + 10
        while httpx.get(f"{isolated_stack.server.url}/readyz").json()["redis"] != "ok":
            assert time.monotonic() < deadline, "redis did not come back in /readyz"
            time.sleep(0.2)
        assert tenant.balance(alice["id"])["posted"] == 15
    finally:
        stop_server(closed)
