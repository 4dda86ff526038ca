"""The authorization matrix: who may call which endpoint, and a tenant never sees another's data.

DESIGN.md: 401 for a missing or bad key, 403 for a scope the key lacks, 404 for another
tenant's ids (as if they did not exist), problem+json bodies with a stable `code`. Every
rejected request is checked against a snapshot of both ledgers: a refusal changes nothing.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Server, Tenant, ledger_snapshot, new_tenant

PROBLEM_JSON = "application/problem+json"
Json = dict[str, Any]


@dataclass
class World:
    """Ledger A (the victim, with data) and ledger B (another tenant), plus operator keys."""

    a: Tenant
    b: Tenant
    a_ledger: Json
    a_cash: Json
    a_alice: Json
    a_bob: Json
    a_posted: Json
    a_pending: Json
    b_cash: Json
    b_carol: Json
    a_webhook: Json
    a_key_id: str
    operator_keys: dict[str, str]  # unbound read and write keys
    # Strings that only ledger A's data contains: B's answers must never include them.
    secrets: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def anon(server: Server) -> Iterator[httpx.Client]:
    """A client with no Authorization header; each request brings its own."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def world(admin: httpx.Client, server: Server) -> Iterator[World]:
    tag = uuid.uuid4().hex[:10]
    secret = f"a-secret-{tag}"
    a = new_tenant(admin, server)
    b = new_tenant(admin, server)
    try:
        a_cash = a.account(f"a-cash-{tag}", normal_balance="debit", overdraft_limit=None)
        a_alice = a.account(f"a-alice-{tag}", metadata={"owner": secret})
        a_bob = a.account(f"a-bob-{tag}")
        a_posted = a.transfer(
            a_cash["id"], a_alice["id"], 100, description=secret, metadata={"note": secret}
        )
        a_pending = a.transfer(a_alice["id"], a_bob["id"], 10, pending=True, description=secret)
        b_cash = b.account(f"b-cash-{tag}", normal_balance="debit", overdraft_limit=None)
        b_carol = b.account(f"b-carol-{tag}")
        b.transfer(b_cash["id"], b_carol["id"], 50)
        a_ledger = admin.get(f"/v1/ledgers/{a.ledger_id}").json()
        a_key_id = admin.post("/v1/api-keys", json={"scope": "read", "ledger_id": a.ledger_id})
        a_webhook = a.client.post(
            "/v1/webhook-endpoints",
            headers={"Authorization": f"Bearer {a.keys['admin']}"},
            json={"url": f"http://127.0.0.1:9/{tag}", "event_types": ["*"]},
        ).json()
        operator_keys = {}
        for scope in ("read", "write"):
            made = admin.post("/v1/api-keys", json={"scope": scope})
            assert made.status_code == 201, made.text
            assert made.json()["ledger_id"] is None
            operator_keys[scope] = made.json()["key"]
        yield World(
            a=a,
            b=b,
            a_ledger=a_ledger,
            a_cash=a_cash,
            a_alice=a_alice,
            a_bob=a_bob,
            a_posted=a_posted,
            a_pending=a_pending,
            b_cash=b_cash,
            b_carol=b_carol,
            a_webhook=a_webhook,
            a_key_id=a_key_id.json()["id"],
            operator_keys=operator_keys,
            secrets=[
                secret,
                a_ledger["name"],
                a_cash["code"],
                a_alice["code"],
                a_bob["code"],
                a_cash["id"],
                a_bob["id"],
                a_webhook["url"],
                a_webhook["secret"],
            ],
        )
    finally:
        a.client.close()
        b.client.close()


# ---------------------------------------------------------------------------------------
# The endpoints, each aimed at ledger A's resources.


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # placeholders: {ledger} {account} {posted} {pending} {webhook}, all in A
    need: str  # the scope it takes: read, write or admin
    body: Callable[[World], Json] | None = None
    params: Callable[[World], Json] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    def send(self, client: httpx.Client, w: World, authorization: str | bytes | None) -> Any:
        path = self.path.format(
            ledger=w.a.ledger_id,
            account=w.a_alice["id"],
            posted=w.a_posted["id"],
            pending=w.a_pending["id"],
            webhook=w.a_webhook["id"],
            apikey=w.a_key_id,
            delivery=uuid.UUID(int=1),
        )
        headers: list[tuple[bytes, bytes]] = []
        if authorization is not None:
            value = authorization if isinstance(authorization, bytes) else authorization.encode()
            headers.append((b"Authorization", value))
        return client.request(
            self.method,
            path,
            headers=headers,
            json=self.body(w) if self.body else None,
            params=self.params(w) if self.params else None,
        )


def _in_a(w: World) -> Json:
    return {"ledger_id": w.a.ledger_id}


ENDPOINTS = [
    Endpoint("POST", "/v1/ledgers", "admin", body=lambda w: {"name": "never-created"}),
    Endpoint("GET", "/v1/ledgers", "read"),
    Endpoint("GET", "/v1/ledgers/{ledger}", "read"),
    Endpoint(
        "POST",
        "/v1/accounts",
        "write",
        body=lambda w: {"ledger_id": w.a.ledger_id, "code": "never-created", "currency": "USD"},
    ),
    Endpoint("GET", "/v1/accounts", "read", params=_in_a),
    Endpoint("GET", "/v1/accounts/{account}", "read"),
    Endpoint("GET", "/v1/accounts/{account}/balance", "read"),
    Endpoint("GET", "/v1/accounts/{account}/entries", "read"),
    Endpoint(
        "POST",
        "/v1/transactions",
        "write",
        body=lambda w: {
            "ledger_id": w.a.ledger_id,
            "postings": [{"debit": w.a_cash["id"], "credit": w.a_alice["id"], "amount": 1}],
        },
    ),
    Endpoint("GET", "/v1/transactions", "read", params=_in_a),
    Endpoint("GET", "/v1/transactions/{posted}", "read"),
    Endpoint("POST", "/v1/transactions/{pending}/post", "write"),
    Endpoint("POST", "/v1/transactions/{pending}/void", "write"),
    Endpoint(
        "POST", "/v1/transactions/{posted}/reverse", "write", body=lambda w: {"description": "x"}
    ),
    Endpoint("GET", "/v1/events", "read", params=_in_a),
    Endpoint(
        "POST",
        "/v1/api-keys",
        "admin",
        body=lambda w: {"scope": "read", "ledger_id": w.a.ledger_id},
    ),
    Endpoint(
        "POST",
        "/v1/webhook-endpoints",
        "admin",
        body=lambda w: {
            "ledger_id": w.a.ledger_id,
            "url": "http://127.0.0.1:9/never-created",
            "event_types": ["*"],
        },
    ),
    Endpoint("GET", "/v1/webhook-endpoints", "read", params=_in_a),
    Endpoint("GET", "/v1/webhook-endpoints/{webhook}", "read"),
    Endpoint("GET", "/v1/webhook-endpoints/{webhook}/deliveries", "read"),
    Endpoint("POST", "/v1/webhook-endpoints/{webhook}/rotate-secret", "admin"),
    Endpoint("POST", "/v1/webhook-endpoints/{webhook}/deliveries/{delivery}/redeliver", "admin"),
    Endpoint("DELETE", "/v1/webhook-endpoints/{webhook}", "admin"),
    Endpoint("DELETE", "/v1/api-keys/{apikey}", "admin"),
]
READS = [e for e in ENDPOINTS if e.need == "read"]
WRITES = [e for e in ENDPOINTS if e.need != "read"]
ADMIN_ONLY = [e for e in ENDPOINTS if e.need == "admin"]


# ---------------------------------------------------------------------------------------
# Helpers.


snapshot = ledger_snapshot  # balances as readers see them (folded + unfolded deltas)


def state(conn: psycopg.Connection[Any], w: World) -> Json:
    """Everything any of these endpoints could change."""
    return {
        "a": snapshot(conn, w.a.ledger_id),
        "b": snapshot(conn, w.b.ledger_id),
        "ledgers": conn.execute("SELECT count(*) FROM ledgers").fetchone(),
        "api_keys": conn.execute("SELECT count(*), count(revoked_at) FROM api_keys").fetchone(),
        "webhook_endpoints": conn.execute(
            "SELECT id, secret, previous_secret, deleted_at FROM webhook_endpoints ORDER BY id"
        ).fetchall(),
    }


def assert_problem(response: httpx.Response, status: int, code: str) -> Json:
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), where
    problem: Json = response.json()
    assert problem["status"] == status, where
    assert problem["code"] == code, f"{where}: {problem}"
    assert {"type", "title", "detail"} <= problem.keys(), where
    return problem


def assert_no_leak(response: httpx.Response, w: World) -> None:
    """No string of ledger A's data in the answer, unless the caller sent it (an echoed ref)."""
    sent = str(response.request.url) + response.request.content.decode(errors="replace")
    for word in w.secrets:
        if word not in sent:
            assert word not in response.text, f"{response.request.url} leaks {word!r}"


def rejected(
    conn: psycopg.Connection[Any],
    w: World,
    send: Callable[[], httpx.Response],
    status: int,
    code: str,
    write: bool = True,
) -> Json:
    """Send, expect the problem, and (for a write) check that nothing changed anywhere."""
    before = state(conn, w) if write else None
    response = send()
    problem = assert_problem(response, status, code)
    assert_no_leak(response, w)
    if write:
        assert state(conn, w) == before, f"{response.request.url}: a rejected write changed state"
    return problem


def bearer(key: str) -> str:
    return f"Bearer {key}"


# ---------------------------------------------------------------------------------------
# 401: no key, or a key that is not one of ours.


@pytest.mark.parametrize("ep", ENDPOINTS, ids=str)
def test_no_key_is_401(
    ep: Endpoint, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    rejected(conn, world, lambda: ep.send(anon, world, None), 401, "unauthorized", ep.writes)
    response = ep.send(anon, world, None)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


def _bad_keys(w: World) -> dict[str, str | bytes]:
    admin_key = w.a.keys["admin"]
    _, key_id, _ = admin_key.split("_", 2)
    unknown = f"mk_{uuid.uuid4().hex}_{secrets.token_urlsafe(32)}"
    return {
        "empty header": "",
        "garbage": bearer("not-a-key"),
        "bearer without token": "Bearer",
        "basic scheme": "Basic " + base64.b64encode(b"user:" + admin_key.encode()).decode(),
        "key without scheme": admin_key,
        "other scheme, real key": f"Token {admin_key}",
        "wrong prefix": bearer("xk_" + admin_key.removeprefix("mk_")),
        "short key id": bearer(f"mk_{key_id[:8]}_{secrets.token_urlsafe(32)}"),
        "non-hex key id": bearer(f"mk_{'z' * 32}_{secrets.token_urlsafe(32)}"),
        "empty secret": bearer(f"mk_{key_id}_"),
        "well-formed unknown key": bearer(unknown),
        "known key id, wrong secret": bearer(f"mk_{key_id}_{secrets.token_urlsafe(32)}"),
        "truncated real key": bearer(admin_key[:-1]),
        "real key plus a byte": bearer(admin_key + "A"),
        "non-ascii bytes": b"Bearer mk_\xe9\xff_" + secrets.token_urlsafe(8).encode(),
        "very long": bearer("mk_" + "a" * 32 + "_" + "b" * 8000),
    }


@pytest.mark.parametrize("ep", ENDPOINTS, ids=str)
def test_bad_keys_are_401(
    ep: Endpoint, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    for name, authorization in _bad_keys(world).items():
        send = partial(ep.send, anon, world, authorization)
        try:
            rejected(conn, world, send, 401, "unauthorized", ep.writes)
        except AssertionError as failure:
            raise AssertionError(f"with {name}: {failure}") from failure


# ---------------------------------------------------------------------------------------
# 403: a key without the scope the endpoint needs.


@pytest.mark.parametrize("holder", ["ledger-bound", "operator"])
@pytest.mark.parametrize("ep", WRITES, ids=str)
def test_read_key_cannot_write(
    ep: Endpoint, holder: str, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    key = world.a.keys["read"] if holder == "ledger-bound" else world.operator_keys["read"]
    rejected(conn, world, lambda: ep.send(anon, world, bearer(key)), 403, "insufficient_scope")


@pytest.mark.parametrize("holder", ["ledger-bound", "operator"])
@pytest.mark.parametrize("ep", ADMIN_ONLY, ids=str)
def test_write_key_cannot_administer(
    ep: Endpoint, holder: str, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    key = world.a.keys["write"] if holder == "ledger-bound" else world.operator_keys["write"]
    rejected(conn, world, lambda: ep.send(anon, world, bearer(key)), 403, "insufficient_scope")


@pytest.mark.parametrize("scope", ["read", "write", "admin"])
@pytest.mark.parametrize("ep", READS, ids=str)
def test_own_keys_of_every_scope_can_read(
    ep: Endpoint, scope: str, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    """The positive control for the matrix: the same requests succeed with the right key."""
    before = state(conn, world)
    response = ep.send(anon, world, bearer(world.a.keys[scope]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert state(conn, world) == before


def test_write_and_admin_scopes_can_write_in_their_own_ledger(
    admin: httpx.Client, server: Server, anon: httpx.Client
) -> None:
    """Positive control for the 403s, on a throwaway ledger."""
    t = new_tenant(admin, server)
    try:
        for scope in ("write", "admin"):
            auth = {"Authorization": bearer(t.keys[scope])}
            made = anon.post(
                "/v1/accounts",
                headers=auth,
                json={"code": f"by-{scope}", "currency": "USD", "overdraft_limit": None},
            )
            assert made.status_code == 201, made.text
            assert made.json()["ledger_id"] == t.ledger_id
        t.account("sink")
        moved = anon.post(
            "/v1/transactions",
            headers={"Authorization": bearer(t.keys["write"])},
            json={"postings": [{"debit": "by-write", "credit": "sink", "amount": 5}]},
        )
        assert moved.status_code == 201, moved.text
    finally:
        t.client.close()


# ---------------------------------------------------------------------------------------
# Another tenant: ledger B's keys aimed at ledger A's ids. 404 as if A did not exist.


# B's keys that hold the needed scope: exactly that one, and admin. (GET /v1/ledgers names
# no ledger; what B's list shows is checked by content below.)
CROSS_TENANT = [
    (ep, scope)
    for ep in ENDPOINTS
    if str(ep) != "GET /v1/ledgers"
    for scope in sorted({ep.need, "admin"})
]


def _cross_expectation(ep: Endpoint) -> tuple[int, str]:
    if ep.method == "POST" and ep.path == "/v1/ledgers":
        return 403, "insufficient_scope"  # a ledger-bound key never creates ledgers
    return 404, "not_found"


@pytest.mark.parametrize(("ep", "scope"), CROSS_TENANT, ids=lambda v: str(v))
def test_other_tenants_ids_are_404(
    ep: Endpoint, scope: str, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    status, code = _cross_expectation(ep)
    key = bearer(world.b.keys[scope])
    rejected(conn, world, lambda: ep.send(anon, world, key), status, code, ep.writes)


def test_other_tenants_ids_look_exactly_like_unknown_ids(world: World, anon: httpx.Client) -> None:
    """A 404 for A's real id and for a random id must be indistinguishable to B."""
    key = {"Authorization": bearer(world.b.keys["read"])}
    unknown = str(uuid.uuid4())
    for real_path, fake_path in [
        (f"/v1/ledgers/{world.a.ledger_id}", f"/v1/ledgers/{unknown}"),
        (f"/v1/accounts/{world.a_alice['id']}", f"/v1/accounts/{unknown}"),
        (f"/v1/accounts/{world.a_alice['id']}/balance", f"/v1/accounts/{unknown}/balance"),
        (f"/v1/accounts/{world.a_alice['id']}/entries", f"/v1/accounts/{unknown}/entries"),
        (f"/v1/transactions/{world.a_posted['id']}", f"/v1/transactions/{unknown}"),
    ]:
        real = anon.get(real_path, headers=key)
        fake = anon.get(fake_path, headers=key)
        assert_problem(real, 404, "not_found")
        assert (real.status_code, real.json()) == (fake.status_code, fake.json())


def test_lists_show_only_the_callers_ledger(
    world: World, anon: httpx.Client, admin: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    before = state(conn, world)
    b = world.b.ledger_id
    key = {"Authorization": bearer(world.b.keys["read"])}

    def get(path: str, **params: Any) -> list[Json]:
        response = anon.get(path, headers=key, params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        assert_no_leak(response, world)
        data: list[Json] = response.json()["data"]
        return data

    assert [ledger["id"] for ledger in get("/v1/ledgers")] == [b]
    accounts = get("/v1/accounts")
    assert {a["id"] for a in accounts} == {world.b_cash["id"], world.b_carol["id"]}
    assert get("/v1/accounts", code=world.a_alice["code"]) == []
    assert get("/v1/accounts", **{"metadata.owner": world.secrets[0]}) == []
    assert {t["ledger_id"] for t in get("/v1/transactions")} == {b}
    assert get("/v1/transactions", account_id=world.a_alice["id"]) == []
    assert get("/v1/transactions", **{"metadata.note": world.secrets[0]}) == []
    events = get("/v1/events")
    assert events
    assert {e["ledger_id"] for e in events} == {b}
    # The operator's unbound key does see ledger A: the filters above are the tenancy.
    seen = admin.get("/v1/accounts", params={"ledger_id": world.a.ledger_id}).json()["data"]
    assert world.a_alice["id"] in {a["id"] for a in seen}
    assert state(conn, world) == before


@pytest.mark.parametrize(
    "postings",
    [
        pytest.param(lambda w: [(w.a_cash["id"], w.a_alice["id"])], id="both of A's ids"),
        pytest.param(lambda w: [(w.b_cash["id"], w.a_alice["id"])], id="credit A's id"),
        pytest.param(lambda w: [(w.a_cash["id"], w.b_carol["id"])], id="debit A's id"),
        pytest.param(lambda w: [(w.b_cash["code"], w.a_alice["code"])], id="A's code"),
        pytest.param(
            lambda w: [(w.b_cash["id"], w.b_carol["id"]), (w.a_cash["id"], w.a_bob["id"])],
            id="second posting A's",
        ),
    ],
)
@pytest.mark.parametrize("explicit_ledger", [False, True], ids=["key's ledger", "ledger_id=B"])
def test_postings_naming_other_tenants_accounts_are_rejected(
    postings: Callable[[World], list[tuple[str, str]]],
    explicit_ledger: bool,
    world: World,
    anon: httpx.Client,
    conn: psycopg.Connection[Any],
) -> None:
    body: Json = {
        "postings": [{"debit": d, "credit": c, "amount": 1} for d, c in postings(world)],
    }
    if explicit_ledger:
        body["ledger_id"] = world.b.ledger_id
    key = {"Authorization": bearer(world.b.keys["write"])}
    rejected(
        conn,
        world,
        lambda: anon.post("/v1/transactions", headers=key, json=body),
        422,
        "account_not_found",
    )


def test_other_tenants_pending_transaction_stays_pending(
    world: World, anon: httpx.Client, admin: httpx.Client
) -> None:
    """After B's attempts on A's pending transaction (all 404), A can still settle it later."""
    key = {"Authorization": bearer(world.b.keys["admin"])}
    pending = world.a_pending["id"]
    for action in ("post", "void"):
        assert_problem(
            anon.post(f"/v1/transactions/{pending}/{action}", headers=key), 404, "not_found"
        )
    seen = admin.get(f"/v1/transactions/{pending}").json()
    assert seen["status"] == "pending"
    assert seen["postings"] == world.a_pending["postings"]


# ---------------------------------------------------------------------------------------
# A ledger-bound admin: may issue keys for its own ledger only, never create ledgers.


def test_ledger_bound_admin_cannot_create_ledgers(
    world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    key = {"Authorization": bearer(world.b.keys["admin"])}
    for body in ({"name": "mine"}, {"name": "mine", "metadata": {"k": "v"}}):
        rejected(
            conn,
            world,
            partial(anon.post, "/v1/ledgers", headers=key, json=body),
            403,
            "insufficient_scope",
        )


@pytest.mark.parametrize("scope", ["read", "write", "admin"])
def test_ledger_bound_admin_cannot_issue_keys_for_another_ledger(
    scope: str, world: World, anon: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    key = {"Authorization": bearer(world.b.keys["admin"])}
    for ledger_id in (world.a.ledger_id, str(uuid.uuid4())):
        body = {"scope": scope, "ledger_id": ledger_id}
        rejected(
            conn,
            world,
            partial(anon.post, "/v1/api-keys", headers=key, json=body),
            404,
            "not_found",
        )


def test_ledger_bound_admin_issues_keys_bound_to_its_own_ledger(
    world: World, anon: httpx.Client
) -> None:
    key = {"Authorization": bearer(world.b.keys["admin"])}
    for body in ({"scope": "admin"}, {"scope": "read", "ledger_id": world.b.ledger_id}):
        made = anon.post("/v1/api-keys", headers=key, json=body)
        assert made.status_code == 201, made.text
        assert made.json()["ledger_id"] == world.b.ledger_id
        issued = {"Authorization": bearer(made.json()["key"])}
        assert_problem(
            anon.get(f"/v1/ledgers/{world.a.ledger_id}", headers=issued), 404, "not_found"
        )
        own = anon.get(f"/v1/ledgers/{world.b.ledger_id}", headers=issued)
        assert own.status_code == 200, own.text
    # An admin key minted by a bound admin is bound too: it cannot create ledgers either.
    minted = anon.post("/v1/api-keys", headers=key, json={"scope": "admin"}).json()["key"]
    assert_problem(
        anon.post("/v1/ledgers", headers={"Authorization": bearer(minted)}, json={"name": "x"}),
        403,
        "insufficient_scope",
    )


def test_operator_cannot_issue_keys_for_an_unknown_ledger(
    world: World, admin: httpx.Client, conn: psycopg.Connection[Any]
) -> None:
    body = {"scope": "write", "ledger_id": str(uuid.uuid4())}
    rejected(conn, world, lambda: admin.post("/v1/api-keys", json=body), 404, "not_found")
