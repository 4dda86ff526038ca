"""The back-office console over HTTP: sign in with an API key, a server-side session in
Redis behind an HttpOnly, Secure, SameSite=Strict cookie, CSRF on every form, tenants
kept apart, revoked keys and Redis outages handled."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest
import redis.asyncio

from tests.conftest import Stack, Tenant, new_tenant, redis_stack_env

STACK_ENV = redis_stack_env  # read by conftest's isolated_stack


@pytest.fixture
def tenant(stack_tenant: Tenant) -> Tenant:
    return stack_tenant


class Browser:
    """Cookies by hand: a Secure cookie is what the server must send, and httpx's jar
    would (rightly) keep it off plain http."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
        self.cookies: dict[str, str] = {}
        self.set_cookie: list[str] = []

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answer = self.client.request(method, path, headers={"Cookie": cookie}, **kwargs)  # type: ignore[arg-type]
        for header in answer.headers.get_list("set-cookie"):
            self.set_cookie.append(header)
            jar = SimpleCookie(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def csrf(self, html: str) -> str:
        found = re.search(r'name="?csrf"? value="([^"]+)"', html)
        assert found, html
        return found.group(1)

    def sign_in(self, key: str) -> httpx.Response:
        form = self.request("GET", "/console/login")
        assert form.status_code == 200
        return self.request(
            "POST", "/console/login", data={"csrf": self.csrf(form.text), "api_key": key}
        )


@pytest.fixture
def browser(isolated_stack: Stack) -> Iterator[Browser]:
    b = Browser(isolated_stack.server.url)
    yield b
    b.client.close()


def test_sign_in_browse_and_sign_out(browser: Browser, tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 1234)
    assert browser.request("GET", "/console").headers["location"] == "/console/login"
    signed = browser.sign_in(tenant.keys["read"])
    assert signed.status_code == 303
    assert signed.headers["location"] == "/console"
    session_cookie = next(c for c in browser.set_cookie if c.startswith("moneta_console="))
    flags = session_cookie.lower()
    assert "httponly" in flags
    assert "secure" in flags
    assert "samesite=strict" in flags
    assert "path=/console" in flags
    home = browser.request("GET", "/console")
    assert home.status_code == 200
    assert tenant.ledger_id in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    page = browser.request("GET", f"/console/ledgers/{tenant.ledger_id}")
    assert page.status_code == 200
    assert "alice" in page.text
    assert "1234" in page.text
    out = browser.request("POST", "/console/logout", data={"csrf": browser.csrf(page.text)})
    assert out.status_code == 303
    assert "moneta_console" not in browser.cookies
    assert browser.request("GET", "/console").status_code == 303


def test_wrong_key_and_missing_csrf_are_refused(browser: Browser, tenant: Tenant) -> None:
    bad = browser.sign_in("mk_" + "0" * 32 + "_wrong")
    assert bad.status_code == 401
    assert "not valid" in bad.text
    assert "moneta_console" not in browser.cookies
    forged = browser.request(
        "POST", "/console/login", data={"csrf": "guess", "api_key": tenant.keys["read"]}
    )
    assert forged.status_code == 400
    assert "moneta_console" not in browser.cookies
    # Signed in, a logout without the session's token does nothing.
    assert browser.sign_in(tenant.keys["read"]).status_code == 303
    kept = browser.request("POST", "/console/logout", data={"csrf": "nope"})
    assert kept.status_code == 400
    assert browser.request("GET", "/console").status_code == 200


def test_a_tenant_sees_only_its_ledger(
    browser: Browser, tenant: Tenant, isolated_stack: Stack
) -> None:
    other = new_tenant(isolated_stack.admin, isolated_stack.server)
    try:
        browser.sign_in(tenant.keys["admin"])
        home = browser.request("GET", "/console")
        assert tenant.ledger_id in home.text
        assert other.ledger_id not in home.text
        assert browser.request("GET", f"/console/ledgers/{other.ledger_id}").status_code == 404
        assert browser.request("GET", "/console/ledgers/not-an-id").status_code == 404
    finally:
        other.client.close()


def test_sessions_live_in_redis_and_end_with_the_key(
    browser: Browser, tenant: Tenant, isolated_stack: Stack, redis_url: str
) -> None:
    made = isolated_stack.admin.post(
        "/v1/api-keys", json={"scope": "read", "ledger_id": tenant.ledger_id}
    ).json()
    browser.sign_in(made["key"])
    session_id = browser.cookies["moneta_console"]

    async def stored() -> list[bytes]:
        async with redis.asyncio.Redis.from_url(redis_url) as client:
            keys: list[bytes] = await client.keys("moneta:session:*")
            values = [await client.get(k) for k in keys]
            return [v for v in values if v]

    sessions = asyncio.run(stored())
    assert sessions
    assert all(session_id.encode() not in v and made["key"].encode() not in v for v in sessions)
    assert browser.request("GET", "/console").status_code == 200
    revoked = isolated_stack.admin.delete(f"/v1/api-keys/{made['id']}")
    assert revoked.status_code == 204
    assert browser.request("GET", "/console").headers["location"] == "/console/login"
