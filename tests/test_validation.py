"""Bad input: a clear 4xx with a stable code, never a 500, and nothing changes.

Each rejected write is checked against a snapshot of the ledger (and the global ledger and
API-key counts). Bodies that httpx would refuse to build (lone surrogates, NUL bytes, bad
UTF-8) are sent as raw bytes. Boundary values just inside each limit are accepted, on a
throwaway ledger, so that the rejections are known to be about the limit.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Server, Tenant, ledger_snapshot, new_tenant

PROBLEM_JSON = "application/problem+json"
MAX_BODY = 1_048_576
Json = dict[str, Any]


@dataclass
class World:
    t: Tenant
    admin: httpx.Client
    cash: Json
    alice: Json
    posted: Json
    pending: Json


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def world(admin: httpx.Client, server: Server) -> Iterator[World]:
    t = new_tenant(admin, server)
    try:
        cash = t.account("cash", normal_balance="debit", overdraft_limit=None)
        alice = t.account("alice")
        t.account("bob")
        posted = t.transfer("cash", "alice", 100)
        pending = t.transfer("alice", "bob", 10, pending=True)
        yield World(t, admin, cash, alice, posted, pending)
    finally:
        t.client.close()


snapshot = ledger_snapshot  # balances as readers see them (folded + unfolded deltas)


def state(conn: psycopg.Connection[Any], w: World) -> Json:
    return {
        "ledger": snapshot(conn, w.t.ledger_id),
        "ledgers": conn.execute("SELECT count(*) FROM ledgers").fetchone(),
        "api_keys": conn.execute("SELECT count(*) FROM api_keys").fetchone(),
    }


def assert_problem(response: httpx.Response, status: int | set[int], code: str | set[str]) -> Json:
    where = f"{response.request.method} {response.request.url.path}"
    statuses = {status} if isinstance(status, int) else status
    codes = {code} if isinstance(code, str) else code
    assert response.status_code in statuses, f"{where}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), where
    problem: Json = response.json()
    assert problem["status"] == response.status_code, where
    assert problem["code"] in codes, f"{where}: {problem}"
    assert {"type", "title", "detail"} <= problem.keys(), where
    return problem


def rejected(
    conn: psycopg.Connection[Any],
    w: World,
    send: Callable[[], httpx.Response],
    status: int | set[int],
    code: str | set[str],
    write: bool = True,
) -> Json:
    """Send, expect the problem, and (for a write) check that nothing changed."""
    before = state(conn, w) if write else None
    response = send()
    problem = assert_problem(response, status, code)
    if write:
        assert state(conn, w) == before, f"{response.request.url.path}: a rejection changed state"
    return problem


# ---------------------------------------------------------------------------------------
# The endpoints that take a body, and a valid body for each.


@dataclass(frozen=True)
class Target:
    name: str
    path: str  # {posted} {pending}
    operator: bool  # sent with the operator's admin key, else the ledger's write key
    valid: Callable[[World], Json]

    def __str__(self) -> str:
        return self.name

    def client(self, w: World) -> httpx.Client:
        return w.admin if self.operator else w.t.client

    def url(self, w: World) -> str:
        return self.path.format(posted=w.posted["id"], pending=w.pending["id"])

    def post(self, w: World, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client(w).post(self.url(w), json=body, **kwargs)

    def raw(
        self, w: World, content: Any, content_type: str | None = "application/json"
    ) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        return self.client(w).post(self.url(w), content=content, headers=headers)


LEDGER = Target("ledger", "/v1/ledgers", True, lambda w: {"name": "never"})
ACCOUNT = Target("account", "/v1/accounts", False, lambda w: {"code": "never", "currency": "USD"})
TRANSACTION = Target(
    "transaction",
    "/v1/transactions",
    False,
    lambda w: {"postings": [{"debit": "cash", "credit": "alice", "amount": 1}]},
)
POST = Target("post", "/v1/transactions/{pending}/post", False, lambda w: {"amount": 5})
REVERSE = Target(
    "reverse", "/v1/transactions/{posted}/reverse", False, lambda w: {"description": "x"}
)
API_KEY = Target("api-key", "/v1/api-keys", True, lambda w: {"scope": "read"})
TARGETS = [LEDGER, ACCOUNT, TRANSACTION, POST, REVERSE, API_KEY]
IDEMPOTENT_TARGETS = [LEDGER, ACCOUNT, TRANSACTION, POST, REVERSE]


def tx(**extra: Any) -> Json:
    return {"postings": [{"debit": "cash", "credit": "alice", "amount": 1}], **extra}


def posting(**override: Any) -> Json:
    return tx(postings=[{"debit": "cash", "credit": "alice", "amount": 1, **override}])


# ---------------------------------------------------------------------------------------
# Body format: malformed JSON 400, other media types 415, huge bodies 413.

MALFORMED = {
    "truncated": b'{"name": "x"',
    "missing value": b'{"name": }',
    "single quotes": b"{'name': 'x'}",
    "trailing comma": b'{"name": "x",}',
    "trailing garbage": b'{"name": "x"} x',
    "bare word": b"hello",
    "unquoted key": b"{name: 1}",
    "raw NUL in string": b'{"name": "a\x00b"}',
    "raw newline in string": b'{"name": "a\nb"}',
    "bad escape": b'{"name": "\\x41"}',
    "short unicode escape": b'{"name": "\\u12"}',
    "invalid UTF-8": b'{"name": "\xff\xfe\xfa"}',
    "overlong UTF-8": b'{"name": "\xc0\xaf"}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("malformed", list(MALFORMED))
def test_malformed_json_is_400(malformed: str, world: World, conn: psycopg.Connection[Any]) -> None:
    content = MALFORMED[malformed]
    for target in TARGETS:
        rejected(conn, world, partial(target.raw, world, content), 400, "malformed_json")


NON_JSON_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/octet-stream",
]


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_non_json_media_type_is_415(
    target: Target, world: World, conn: psycopg.Connection[Any]
) -> None:
    content = json.dumps(target.valid(world)).encode()  # valid JSON, wrongly labelled
    for content_type in NON_JSON_TYPES:
        rejected(
            conn,
            world,
            partial(target.raw, world, content, content_type),
            415,
            "unsupported_media_type",
        )


def _huge_body(w: World, target: Target) -> bytes:
    body = {**target.valid(w), "metadata": {"k": "v" * 400}}
    head = json.dumps(body).encode()
    return head + b" " * (MAX_BODY + 1 - len(head))


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_body_over_one_mib_is_413(
    target: Target, world: World, conn: psycopg.Connection[Any]
) -> None:
    content = _huge_body(world, target)
    assert len(content) == MAX_BODY + 1
    rejected(conn, world, lambda: target.raw(world, content), 413, "payload_too_large")
    many = b'{"postings": [' + b'{"debit": "cash", "credit": "alice", "amount": 1},' * 21_000
    rejected(conn, world, lambda: target.raw(world, many + b"{}]}"), 413, "payload_too_large")


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_chunked_body_over_one_mib_is_413(
    target: Target, world: World, conn: psycopg.Connection[Any]
) -> None:
    content = _huge_body(world, target)

    def chunks() -> Iterator[bytes]:  # no length known up front: Transfer-Encoding: chunked
        for start in range(0, len(content), 65_536):
            yield content[start : start + 65_536]

    def send() -> httpx.Response:
        response = target.raw(world, chunks())
        assert response.request.headers.get("transfer-encoding") == "chunked"
        return response

    rejected(conn, world, send, 413, "payload_too_large")


def test_body_of_exactly_one_mib_is_accepted(tenant: Tenant) -> None:
    head = json.dumps({"code": "padded", "currency": "USD"}).encode()
    content = head + b" " * (MAX_BODY - len(head))
    response = tenant.client.post(
        "/v1/accounts", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    chunked = tenant.client.post(
        "/v1/accounts",
        content=iter([head[:10], head[10:], b" " * (MAX_BODY - len(head))]),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 409, chunked.text  # the same code again: it was parsed
    assert chunked.json()["code"] == "duplicate_account_code"


# ---------------------------------------------------------------------------------------
# Schema violations: 422 validation_error.

WRONG_TYPES: list[tuple[Target, Any]] = [
    (LEDGER, {"name": 5}),
    (LEDGER, {"name": None}),
    (LEDGER, {"name": ""}),
    (LEDGER, {"name": ["x"]}),
    (LEDGER, {"name": "x", "metadata": []}),
    (LEDGER, {"name": "x", "metadata": {"k": 1}}),
    (LEDGER, []),
    (LEDGER, "name"),
    (LEDGER, None),
    (ACCOUNT, {}),
    (ACCOUNT, {"code": 42, "currency": "USD"}),
    (ACCOUNT, {"code": "", "currency": "USD"}),
    (ACCOUNT, {"code": "has space", "currency": "USD"}),
    (ACCOUNT, {"code": "x", "currency": 840}),
    (ACCOUNT, {"code": "x", "currency": "USD", "ledger_id": "not-a-uuid"}),
    (ACCOUNT, {"code": "x", "currency": "USD", "ledger_id": 1}),
    (ACCOUNT, {"code": "x", "currency": "USD", "normal_balance": "both"}),
    (ACCOUNT, {"code": "x", "currency": "USD", "normal_balance": True}),
    (ACCOUNT, {"code": "x", "currency": "USD", "overdraft_limit": -1}),
    (ACCOUNT, {"code": "x", "currency": "USD", "overdraft_limit": 1.5}),
    (ACCOUNT, {"code": "x", "currency": "USD", "overdraft_limit": "ten"}),
    (ACCOUNT, {"code": "x", "currency": "USD", "overdraft_limit": True}),
    (ACCOUNT, {"code": "x", "currency": "USD", "overdraft_limit": 2**128}),
    (ACCOUNT, {"code": "x", "currency": "USD", "metadata": "k=v"}),
    (ACCOUNT, {"code": "x", "currency": "USD", "metadata": {"k": {"nested": "v"}}}),
    (ACCOUNT, {"code": "x", "currency": "USD", "metadata": {"k": None}}),
    (ACCOUNT, {"code": "x", "currency": "USD", "metadata": {"": "v"}}),
    (TRANSACTION, {}),
    (TRANSACTION, tx(ledger_id="nope")),
    (TRANSACTION, {"postings": {"debit": "cash", "credit": "alice", "amount": 1}}),
    (TRANSACTION, {"postings": "cash->alice"}),
    (TRANSACTION, {"postings": [1]}),
    (TRANSACTION, {"postings": [["cash", "alice", 1]]}),
    (TRANSACTION, {"postings": None}),
    (TRANSACTION, posting(debit=1)),
    (TRANSACTION, posting(credit=None)),
    (TRANSACTION, posting(debit="")),
    (TRANSACTION, posting(debit="no spaces allowed")),
    (TRANSACTION, posting(debit="x" * 256)),
    (TRANSACTION, {"postings": [{"debit": "cash", "credit": "alice"}]}),
    (TRANSACTION, {"postings": [{"credit": "alice", "amount": 1}]}),
    (TRANSACTION, tx(pending="true")),
    (TRANSACTION, tx(pending=1)),
    (TRANSACTION, tx(pending=None)),
    (TRANSACTION, tx(description=5)),
    (TRANSACTION, tx(external_id=5)),
    (TRANSACTION, tx(external_id="")),
    (TRANSACTION, tx(metadata=[])),
    (TRANSACTION, tx(metadata={"k": 1})),
    (TRANSACTION, tx(metadata={"k": True})),
    (TRANSACTION, tx(effective_at="yesterday")),
    (TRANSACTION, tx(effective_at=[2024, 1, 1])),
    (POST, {"amount": "x"}),
    (POST, {"amount": 0}),
    (POST, {"amount": -5}),
    (POST, {"amount": 1.5}),
    (POST, {"amounts": "5"}),
    (POST, {"amounts": [-1]}),
    (POST, {"amounts": [1.5]}),
    (POST, {"amounts": [5] * 101}),
    (POST, {"amount": 5, "amounts": [5]}),
    (POST, []),
    (POST, "post"),
    (REVERSE, {"description": 5}),
    (REVERSE, {"external_id": ""}),
    (REVERSE, {"metadata": []}),
    (REVERSE, {"metadata": {"k": 5}}),
    (REVERSE, []),
    (API_KEY, {}),
    (API_KEY, {"scope": "root"}),
    (API_KEY, {"scope": "ADMIN"}),
    (API_KEY, {"scope": None}),
    (API_KEY, {"scope": "read", "ledger_id": "x"}),
    (API_KEY, {"scope": "read", "name": 5}),
    (API_KEY, {"scope": "read", "name": ""}),
]


@pytest.mark.parametrize(
    ("target", "body"), WRONG_TYPES, ids=[f"{t}-{json.dumps(b)[:60]}" for t, b in WRONG_TYPES]
)
def test_wrong_types_are_422(
    target: Target, body: Any, world: World, conn: psycopg.Connection[Any]
) -> None:
    rejected(conn, world, lambda: target.post(world, body), 422, "validation_error")


UNKNOWN_FIELDS: list[tuple[Target, Json]] = [
    (LEDGER, {"name": "x", "id": str(uuid.uuid4())}),
    (LEDGER, {"name": "x", "created_at": "2024-01-01T00:00:00Z"}),
    (ACCOUNT, {"code": "x", "currency": "USD", "balance": {"posted": 1000}}),
    (ACCOUNT, {"code": "x", "currency": "USD", "Code": "y"}),
    (TRANSACTION, tx(status="posted")),
    (TRANSACTION, tx(idempotency_key="k")),
    (TRANSACTION, posting(memo="hi")),
    (TRANSACTION, posting(currency="USD")),
    (POST, {"amount": 5, "force": True}),
    (REVERSE, {"amount": 5}),
    (API_KEY, {"scope": "read", "secret": "chosen-by-me"}),
]


@pytest.mark.parametrize(
    ("target", "body"), UNKNOWN_FIELDS, ids=[f"{t}-{sorted(b)}" for t, b in UNKNOWN_FIELDS]
)
def test_unknown_fields_are_422(
    target: Target, body: Json, world: World, conn: psycopg.Connection[Any]
) -> None:
    problem = rejected(conn, world, lambda: target.post(world, body), 422, "validation_error")
    assert any(e["type"] == "extra_forbidden" for e in problem["errors"]), problem


BAD_AMOUNTS: list[Any] = [
    0,
    -1,
    -(2**128),
    "0",
    "-1",
    "-0",
    "+5",
    " 5",
    "5 ",
    "",
    "1e3",
    "1E3",
    "1.0",
    "1.5",
    "0x10",
    "1_000",
    "١٢",  # Arabic-Indic digits: str.isdigit() is true, but they are not minor units
    "５",  # fullwidth digit
    1.5,
    1.0,
    1e3,
    True,
    False,
    None,
    [],
    [1],
    {},
    {"value": 1},
    2**128,
    2**128 + 1,
    str(2**128),
    10**40,
    str(10**40),
    "9" * 40,
    "0" * 40 + "1",
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_bad_amounts_are_422(amount: Any, world: World, conn: psycopg.Connection[Any]) -> None:
    for body in (
        posting(amount=amount),
        # The bad amount second, behind a good posting: the whole request is refused.
        tx(
            postings=[
                posting()["postings"][0],
                {"debit": "cash", "credit": "alice", "amount": amount},
            ]
        ),
    ):
        rejected(conn, world, partial(TRANSACTION.post, world, body), 422, "validation_error")
    if amount is not None:  # {"amount": null} on /post means "settle in full"
        rejected(conn, world, lambda: POST.post(world, {"amount": amount}), 422, "validation_error")


RAW_AMOUNTS = {
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "1E400": b"1E400",
    "-0.0": b"-0.0",
    "5000 digits": b"1" * 5000,
    "50000 digits": b"9" * 50_000,
}


@pytest.mark.parametrize("raw", list(RAW_AMOUNTS))
def test_non_standard_json_numbers_as_amounts_are_rejected(
    raw: str, world: World, conn: psycopg.Connection[Any]
) -> None:
    content = (
        b'{"postings": [{"debit": "cash", "credit": "alice", "amount": %s}]}' % (RAW_AMOUNTS[raw])
    )
    # Either "not JSON" or "not an amount", with the stable code for the one it picks.
    rejected(
        conn,
        world,
        lambda: TRANSACTION.raw(world, content),
        {400, 422},
        {"malformed_json", "validation_error"},
    )


def test_amount_boundaries_are_accepted(tenant: Tenant) -> None:
    tenant.account("mint", normal_balance="debit", overdraft_limit=None)
    vault = tenant.account("vault")
    tenant.account("other")
    top = 2**128 - 1
    assert tenant.transfer("mint", "vault", top)["postings"][0]["amount"] == top
    tenant.transfer("mint", "other", str(top))  # type: ignore[arg-type]
    tenant.transfer("vault", "other", "0001")  # type: ignore[arg-type]
    assert tenant.balance(vault["id"])["posted"] == top - 1


def test_postings_list_bounds(world: World, conn: psycopg.Connection[Any]) -> None:
    one = {"debit": "cash", "credit": "alice", "amount": 1}
    body: Json
    for body in ({"postings": []}, {"postings": [one] * 101}, {"postings": [one] * 10_000}):
        rejected(conn, world, partial(TRANSACTION.post, world, body), 422, "validation_error")


def test_one_hundred_postings_are_accepted(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    response = tenant.client.post(
        "/v1/transactions",
        json={"postings": [{"debit": "cash", "credit": "alice", "amount": 1}] * 100},
    )
    assert response.status_code == 201, response.text
    assert len(response.json()["postings"]) == 100


# ---------------------------------------------------------------------------------------
# Lengths and counts.


TOO_MANY_KEYS = {f"k{i}": "v" for i in range(51)}
LONG_KEY = {"k" * 65: "v"}
LONG_VALUE = {"k": "v" * 501}

OVERLONG: list[tuple[str, Target, Json]] = [
    ("ledger name 201", LEDGER, {"name": "n" * 201}),
    ("ledger metadata 51 keys", LEDGER, {"name": "x", "metadata": TOO_MANY_KEYS}),
    ("ledger metadata key 65", LEDGER, {"name": "x", "metadata": LONG_KEY}),
    ("ledger metadata value 501", LEDGER, {"name": "x", "metadata": LONG_VALUE}),
    ("account code 256", ACCOUNT, {"code": "c" * 256, "currency": "USD"}),
    ("account code 10000", ACCOUNT, {"code": "c" * 10_000, "currency": "USD"}),
    ("account metadata 51", ACCOUNT, {"code": "x", "currency": "USD", "metadata": TOO_MANY_KEYS}),
    ("account metadata key 65", ACCOUNT, {"code": "x", "currency": "USD", "metadata": LONG_KEY}),
    ("account metadata value", ACCOUNT, {"code": "x", "currency": "USD", "metadata": LONG_VALUE}),
    ("description 1001", TRANSACTION, tx(description="d" * 1001)),
    ("external_id 256", TRANSACTION, tx(external_id="e" * 256)),
    ("tx metadata 51 keys", TRANSACTION, tx(metadata=TOO_MANY_KEYS)),
    ("tx metadata key 65", TRANSACTION, tx(metadata=LONG_KEY)),
    ("tx metadata value 501", TRANSACTION, tx(metadata=LONG_VALUE)),
    ("tx metadata value 100k", TRANSACTION, tx(metadata={"k": "v" * 100_000})),
    ("reverse description 1001", REVERSE, {"description": "d" * 1001}),
    ("reverse external_id 256", REVERSE, {"external_id": "e" * 256}),
    ("reverse metadata 51 keys", REVERSE, {"metadata": TOO_MANY_KEYS}),
    ("reverse metadata value 501", REVERSE, {"metadata": LONG_VALUE}),
    ("api key name 201", API_KEY, {"scope": "read", "name": "n" * 201}),
]


@pytest.mark.parametrize(
    ("target", "body"), [(t, b) for _, t, b in OVERLONG], ids=[n for n, _, _ in OVERLONG]
)
def test_overlong_strings_and_maps_are_422(
    target: Target, body: Json, world: World, conn: psycopg.Connection[Any]
) -> None:
    rejected(conn, world, lambda: target.post(world, body), 422, "validation_error")


def test_longest_allowed_strings_and_maps_are_accepted(tenant: Tenant, admin: httpx.Client) -> None:
    full = {f"{i:02d}" + "k" * 62: "v" * 500 for i in range(50)}
    assert all(len(k) == 64 for k in full)
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    wallet = tenant.account("w" * 255, metadata=full)
    assert wallet["metadata"] == full
    made = tenant.transfer(
        "cash", wallet["id"], 1, description="d" * 1000, external_id="e" * 255, metadata=full
    )
    assert made["description"] == "d" * 1000
    assert made["metadata"] == full
    ledger = admin.post("/v1/ledgers", json={"name": "n" * 200, "metadata": full})
    assert ledger.status_code == 201, ledger.text
    key = admin.post(
        "/v1/api-keys", json={"scope": "read", "ledger_id": tenant.ledger_id, "name": "n" * 200}
    )
    assert key.status_code == 201, key.text


QUERY_FILTERS: list[tuple[str, Json]] = [
    ("code 256", {"code": "c" * 256}),
    ("code with space", {"code": "a b"}),
    ("code with NUL", {"code": "a\x00b"}),
    ("metadata key 65", {"metadata." + "k" * 65: "v"}),
    ("metadata empty key", {"metadata.": "v"}),
    ("metadata value 501", {"metadata.k": "v" * 501}),
    ("metadata value NUL", {"metadata.k": "a\x00b"}),
    ("metadata key NUL", {"metadata.a\x00b": "v"}),
    ("21 metadata filters", {f"metadata.k{i}": "v" for i in range(21)}),
    ("ledger_id not a uuid", {"ledger_id": "abc"}),
    ("ledger_id a number", {"ledger_id": "1"}),
]


@pytest.mark.parametrize(
    ("params"), [p for _, p in QUERY_FILTERS], ids=[n for n, _ in QUERY_FILTERS]
)
def test_bad_list_filters_are_422(params: Json, world: World) -> None:
    paths = ["/v1/accounts"] if "code" in params else ["/v1/accounts", "/v1/transactions"]
    for path in paths:
        assert_problem(world.t.client.get(path, params=params), 422, "validation_error")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/transactions", {"account_id": "abc"}),
        ("/v1/transactions", {"status": "bogus"}),
        ("/v1/transactions", {"status": "POSTED"}),
        ("/v1/events", {"ledger_id": "abc"}),
    ],
)
def test_bad_query_types_are_422(path: str, params: Json, world: World) -> None:
    assert_problem(world.t.client.get(path, params=params), 422, "validation_error")


# ---------------------------------------------------------------------------------------
# NUL characters and lone surrogates, sent as JSON escapes in raw bytes.

BAD_ESCAPES = {
    "NUL": "\\u0000",
    "lone high surrogate": "\\ud800",
    "lone low surrogate": "\\udfff",
    "high surrogate then letter": "\\ud800\\u0041",
    "reversed pair": "\\udc00\\ud800",
}
MARK = "@@BAD@@"

STRING_FIELDS: list[tuple[str, Target, Json]] = [
    ("ledger name", LEDGER, {"name": f"a{MARK}b"}),
    ("ledger metadata value", LEDGER, {"name": "x", "metadata": {"k": MARK}}),
    ("ledger metadata key", LEDGER, {"name": "x", "metadata": {MARK: "v"}}),
    ("account code", ACCOUNT, {"code": f"a{MARK}", "currency": "USD"}),
    ("account currency", ACCOUNT, {"code": "x", "currency": f"USD{MARK}"}),
    ("account metadata value", ACCOUNT, {"code": "x", "currency": "USD", "metadata": {"k": MARK}}),
    ("account metadata key", ACCOUNT, {"code": "x", "currency": "USD", "metadata": {MARK: "v"}}),
    ("description", TRANSACTION, tx(description=f"pay{MARK}")),
    ("external_id", TRANSACTION, tx(external_id=f"ext{MARK}")),
    ("tx metadata value", TRANSACTION, tx(metadata={"k": MARK})),
    ("tx metadata key", TRANSACTION, tx(metadata={f"k{MARK}": "v"})),
    ("posting debit", TRANSACTION, posting(debit=f"cash{MARK}")),
    ("posting credit", TRANSACTION, posting(credit=f"alice{MARK}")),
    ("posting amount", TRANSACTION, posting(amount=f"1{MARK}")),
    ("reverse description", REVERSE, {"description": MARK}),
    ("reverse external_id", REVERSE, {"external_id": MARK}),
    ("reverse metadata value", REVERSE, {"metadata": {"k": MARK}}),
    ("api key name", API_KEY, {"scope": "read", "name": MARK}),
    ("api key scope", API_KEY, {"scope": f"read{MARK}"}),
]


@pytest.mark.parametrize(
    ("target", "body"), [(t, b) for _, t, b in STRING_FIELDS], ids=[n for n, _, _ in STRING_FIELDS]
)
def test_nul_and_lone_surrogates_are_422(
    target: Target, body: Json, world: World, conn: psycopg.Connection[Any]
) -> None:
    for escape in BAD_ESCAPES.values():
        content = json.dumps(body).replace(MARK, escape).encode()
        assert escape.encode() in content
        rejected(conn, world, partial(target.raw, world, content), 422, "validation_error")


def test_surrogate_pairs_and_unicode_are_accepted(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    content = (
        b'{"postings": [{"debit": "cash", "credit": "alice", "amount": 1}],'
        b' "description": "\\ud83d\\ude00 caf\\u00e9", "metadata": {"\\u00e9": "\\u4e2d"}}'
    )
    response = tenant.client.post(
        "/v1/transactions", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "\U0001f600 café"
    assert response.json()["metadata"] == {"é": "中"}


# ---------------------------------------------------------------------------------------
# Account codes, currencies, pending expiry, effective times.


@pytest.mark.parametrize(
    "code",
    [
        "0b6d2e4a-3c1f-4f7e-9a55-2f8d5c3e1b7a",
        "0B6D2E4A-3C1F-4F7E-9A55-2F8D5C3E1B7A",
        "00000000-0000-0000-0000-000000000000",
        "existing account id",
    ],
)
def test_uuid_shaped_account_codes_are_422(
    code: str, world: World, conn: psycopg.Connection[Any]
) -> None:
    if code == "existing account id":
        code = world.alice["id"]
    body = {"code": code, "currency": "USD"}
    rejected(conn, world, lambda: ACCOUNT.post(world, body), 422, "validation_error")


@pytest.mark.parametrize(
    "currency",
    [
        "usd",
        "Usd",
        "US",
        "U",
        "",
        "USD ",
        " USD",
        "U SD",
        "€UR",
        "ÜSD",
        "1USD",
        "_USD",
        "U-SD",
        "A" * 17,
        840,
        None,
        True,
        ["USD"],
    ],
    ids=repr,
)
def test_invalid_currencies_are_422(
    currency: Any, world: World, conn: psycopg.Connection[Any]
) -> None:
    body = {"code": "x", "currency": currency}
    rejected(conn, world, lambda: ACCOUNT.post(world, body), 422, "validation_error")


def test_valid_currencies_are_accepted(tenant: Tenant) -> None:
    for i, currency in enumerate(["EUR", "USDC", "POINTS", "X_1", "A" * 16]):
        assert tenant.account(f"acct-{i}", currency=currency)["currency"] == currency


@pytest.mark.parametrize(
    "extra",
    [
        {"expires_in": 60},
        {"pending": False, "expires_in": 60},
        {"pending": True, "expires_in": 0},
        {"pending": True, "expires_in": -1},
        {"pending": True, "expires_in": 30 * 24 * 3600 + 1},
        {"pending": True, "expires_in": 10**30},
        {"pending": True, "expires_in": 1.5},
        {"pending": True, "expires_in": 60.0},
        {"pending": True, "expires_in": "60"},
        {"pending": True, "expires_in": True},
        {"pending": True, "expires_in": "PT60S"},
    ],
    ids=repr,
)
def test_bad_expires_in_is_422(extra: Json, world: World, conn: psycopg.Connection[Any]) -> None:
    body = tx(**extra)
    rejected(conn, world, lambda: TRANSACTION.post(world, body), 422, "validation_error")


def test_pending_with_expires_in_is_accepted(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    made = tenant.transfer("cash", "alice", 1, pending=True, expires_in=30 * 24 * 3600)
    assert made["status"] == "pending"
    assert made["expires_at"] is not None


def _iso(delta: timedelta, tz: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).astimezone(timezone(tz)).isoformat()


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda: _iso(timedelta(days=1)), id="tomorrow"),
        pytest.param(lambda: _iso(timedelta(minutes=10), timedelta(hours=5)), id="+10min +05:00"),
        pytest.param(lambda: _iso(timedelta(minutes=10), -timedelta(hours=8)), id="+10min -08:00"),
        pytest.param(lambda: "9999-12-31T23:59:59Z", id="year 9999"),
        pytest.param(lambda: "9999-12-31T23:59:59-01:00", id="past year 9999 in UTC"),
    ],
)
def test_effective_at_in_the_future_is_422(
    when: Callable[[], str], world: World, conn: psycopg.Connection[Any]
) -> None:
    body = tx(effective_at=when())
    # Past the storable range (year 9999) the type check answers before the clock check.
    codes = {"effective_at_in_future", "validation_error"}
    rejected(conn, world, lambda: TRANSACTION.post(world, body), 422, codes)


@pytest.mark.parametrize(
    "when",
    [
        "2024-01-01T00:00:00",
        "2024-01-01 00:00:00",
        "2024-01-01T00:00:00.123456",
        "2024-01-01",
        "00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00+25:00",
        "yesterday",
        "",
        "infinity",
        "-infinity",
    ],
)
def test_naive_or_invalid_effective_at_is_422(
    when: str, world: World, conn: psycopg.Connection[Any]
) -> None:
    body = tx(effective_at=when)
    rejected(conn, world, lambda: TRANSACTION.post(world, body), 422, "validation_error")


def test_backdated_effective_at_with_an_offset_is_accepted(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    alice = tenant.account("alice")
    tenant.transfer("cash", "alice", 7, effective_at="2020-06-01T12:00:00+02:00")
    balance = tenant.client.get(
        f"/v1/accounts/{alice['id']}/balance", params={"as_of": "2020-06-01T10:00:00Z"}
    )
    assert balance.status_code == 200, balance.text
    assert balance.json()["posted"] == 7


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:30:00+14:00",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00.000001Z",
    ],
)
def test_effective_at_at_the_edge_of_the_calendar(
    when: str, tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    """Year 1 in a zone east of UTC is year 0 in UTC. Refuse it (422) or store exactly the
    instant that was sent; never crash, never store something else (e.g. -infinity)."""
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    before = snapshot(db, tenant.ledger_id)
    response = tenant.client.post("/v1/transactions", json=tx(effective_at=when))
    if response.status_code != 201:
        assert_problem(response, 422, "validation_error")
        assert snapshot(db, tenant.ledger_id) == before
        return
    stored = response.json()["effective_at"]
    sent = datetime.fromisoformat(when.replace("Z", "+00:00"))
    assert datetime.fromisoformat(stored) == sent, f"sent {when}, stored {stored}"


@pytest.mark.parametrize(
    "as_of",
    ["2024-01-01T00:00:00", "2024-01-01", "yesterday", "", "2024-02-30T00:00:00Z", "1e10x"],
)
def test_naive_or_invalid_as_of_is_422(as_of: str, world: World) -> None:
    response = world.t.client.get(
        f"/v1/accounts/{world.alice['id']}/balance", params={"as_of": as_of}
    )
    assert_problem(response, 422, "validation_error")


@pytest.mark.parametrize(
    "as_of",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_as_of_at_the_edge_of_the_calendar_is_not_a_500(as_of: str, world: World) -> None:
    response = world.t.client.get(
        f"/v1/accounts/{world.alice['id']}/balance", params={"as_of": as_of}
    )
    if response.status_code != 200:
        assert_problem(response, 422, "validation_error")


# ---------------------------------------------------------------------------------------
# Paging: forged cursors 400 invalid_cursor, limits 422.


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jb64(value: Any) -> str:
    return b64(json.dumps(value).encode())


@dataclass(frozen=True)
class Listing:
    name: str
    path: str  # {alice}
    cursor_param: str
    kinds: str  # what a real cursor holds: "uuid" or "int"

    def __str__(self) -> str:
        return self.name

    def get(self, w: World, params: Json, client: httpx.Client | None = None) -> httpx.Response:
        return (client or w.t.client).get(self.path.format(alice=w.alice["id"]), params=params)


LISTINGS = [
    Listing("ledgers", "/v1/ledgers", "cursor", "uuid"),
    Listing("accounts", "/v1/accounts", "cursor", "uuid"),
    Listing("transactions", "/v1/transactions", "cursor", "uuid"),
    Listing("entries", "/v1/accounts/{alice}/entries", "cursor", "int"),
    Listing("events", "/v1/events", "after", "int"),
]

FORGED_ANY: dict[str, str] = {
    "punctuation": "!!!",
    "empty": "",
    "one char": "a",
    "padding only": "====",
    "not json": b64(b"not json"),
    "invalid utf-8": b64(b"\xff\xfe\xfd"),
    "object": jb64({"id": 1}),
    "empty list": jb64([]),
    "null": jb64(None),
    "number": jb64(1),
    "string": jb64("x"),
    "[null]": jb64([None]),
    "[true]": jb64([True]),
    "[1.5]": jb64([1.5]),
    "[NaN]": b64(b"[NaN]"),
    "[{}]": jb64([{}]),
    "[[]]": jb64([[]]),
    "three values": jb64(["a", "b", "c"]),
    "deeply nested": b64(b"[" * 150 + b"]" * 150),
}
FORGED_BY_KIND: dict[str, dict[str, str]] = {
    "uuid": {
        "[not-a-uuid]": jb64(["not-a-uuid"]),
        "[int]": jb64([1]),
        "[2**70]": jb64([2**70]),
        "[10**300]": jb64([10**300]),
        "[NUL]": jb64(["\x00"]),
        "[bad hex]": jb64(["00000000-0000-0000-0000-00000000000g"]),
        "[uuid, extra]": jb64([str(uuid.uuid4()), 1]),
    },
    "int": {
        "[digits as string]": jb64(["1"]),
        "[uuid]": jb64([str(uuid.uuid4())]),
        "[2**63]": jb64([2**63]),
        "[2**64]": jb64([2**64]),
        "[2**70]": jb64([2**70]),
        "[-(2**63)-1]": jb64([-(2**63) - 1]),
        "[10**300]": jb64([10**300]),
        "[1, 2]": jb64([1, 2]),
    },
}
CURSOR_CASES = [
    pytest.param(listing, cursor, id=f"{listing}-{name}")
    for listing in LISTINGS
    for name, cursor in {**FORGED_ANY, **FORGED_BY_KIND[listing.kinds]}.items()
]


@pytest.mark.parametrize(("listing", "cursor"), CURSOR_CASES)
def test_forged_cursors_are_400(listing: Listing, cursor: str, world: World) -> None:
    assert len(cursor) <= 512, "this case is about content, not length"
    response = listing.get(world, {listing.cursor_param: cursor})
    assert_problem(response, 400, "invalid_cursor")


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_overlong_cursor_is_rejected(listing: Listing, world: World) -> None:
    response = listing.get(world, {listing.cursor_param: "A" * 513})
    assert_problem(response, {400, 422}, {"invalid_cursor", "validation_error"})


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_real_cursors_page_through(listing: Listing, world: World) -> None:
    """The positive control: cursors the API issues are accepted."""
    # A ledger-bound key lists one ledger: page ledgers with the operator's key.
    client = world.admin if listing.name == "ledgers" else world.t.client
    page = listing.get(world, {"limit": 1}, client)
    assert page.status_code == 200, page.text
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    again = listing.get(world, {"limit": 1, listing.cursor_param: cursor}, client)
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_bad_limits_are_422(listing: Listing, world: World) -> None:
    for limit in ["0", "1001", "-1", "abc", "1.5", "", "1e3", str(10**30)]:
        assert_problem(listing.get(world, {"limit": limit}), 422, "validation_error")


@pytest.mark.parametrize("listing", LISTINGS, ids=str)
def test_limit_bounds_are_accepted(listing: Listing, world: World) -> None:
    for limit in (1, 1000):
        response = listing.get(world, {"limit": limit})
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) <= limit


# ---------------------------------------------------------------------------------------
# Path ids: anything that is not a UUID names nothing (404), on reads and writes alike.

NOT_UUIDS = [
    "not-a-uuid",
    "123",
    "null",
    "%00",
    "a%2Fb",
    "%27%20OR%201%3D1%20--",
    "x" * 2000,
    "0b6d2e4a-3c1f-4f7e-9a55-2f8d5c3e1b7",
    "0b6d2e4a-3c1f-4f7e-9a55-2f8d5c3e1b7a0",
    "0b6d2e4a-3c1f-4f7e-9a55-2f8d5c3e1b7g",
    "%C3%A9",
]
ID_PATHS = [
    ("GET", "/v1/ledgers/{}"),
    ("GET", "/v1/accounts/{}"),
    ("GET", "/v1/accounts/{}/balance"),
    ("GET", "/v1/accounts/{}/entries"),
    ("GET", "/v1/transactions/{}"),
    ("POST", "/v1/transactions/{}/post"),
    ("POST", "/v1/transactions/{}/void"),
    ("POST", "/v1/transactions/{}/reverse"),
]


@pytest.mark.parametrize("caller", ["ledger key", "operator key"])
@pytest.mark.parametrize(("method", "path"), ID_PATHS, ids=[f"{m} {p}" for m, p in ID_PATHS])
def test_non_uuid_path_ids_are_404(
    method: str, path: str, caller: str, world: World, conn: psycopg.Connection[Any]
) -> None:
    client = world.t.client if caller == "ledger key" else world.admin
    for bad_id in NOT_UUIDS:
        rejected(
            conn,
            world,
            partial(client.request, method, path.format(bad_id)),
            404,
            "not_found",
            write=method == "POST",
        )


@pytest.mark.parametrize(("method", "path"), ID_PATHS, ids=[f"{m} {p}" for m, p in ID_PATHS])
def test_unknown_uuid_path_ids_are_404(
    method: str, path: str, world: World, conn: psycopg.Connection[Any]
) -> None:
    unknown = str(uuid.uuid4())
    rejected(
        conn, world, lambda: world.t.client.request(method, path.format(unknown)), 404, "not_found"
    )


# ---------------------------------------------------------------------------------------
# Idempotency-Key: at most 255 printable ASCII characters.

BAD_IDEMPOTENCY_KEYS: dict[str, str | bytes] = {
    "256 chars": "k" * 256,
    "4000 chars": "k" * 4000,
    "latin-1 byte": b"caf\xe9",
    "utf-8 cyrillic": "ключ".encode(),
    "utf-8 emoji": "\U0001f511".encode(),
    "high byte only": b"\x80",
    "empty": "",
    "tab inside": "a\tb",
}


@pytest.mark.parametrize("target", IDEMPOTENT_TARGETS, ids=str)
def test_invalid_idempotency_keys_are_400(
    target: Target, world: World, conn: psycopg.Connection[Any]
) -> None:
    for key in BAD_IDEMPOTENCY_KEYS.values():
        rejected(
            conn,
            world,
            partial(target.post, world, target.valid(world), headers={"Idempotency-Key": key}),
            400,
            "invalid_idempotency_key",
        )


def test_longest_idempotency_key_is_accepted(tenant: Tenant) -> None:
    key = "".join(chr(c) for c in range(0x21, 0x7F)) * 3
    key = key[:255]
    body = {"code": "once", "currency": "USD"}
    first = tenant.client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    replay = tenant.client.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 201, replay.text
    assert replay.json()["id"] == first.json()["id"]
