"""Test setup: a real PostgreSQL (embedded, or MONETA_TEST_DATABASE_URL), migrated with
`moneta migrate`, and a real `moneta serve` process on a free port. Tests talk HTTP to it.

Isolation is by tenant: every test creates its own ledger, so tests never see each
other's rows and the server and database start once per session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from moneta.db.embedded import FAST_UNSAFE_CONF, EmbeddedPostgres
from tests.services import kafka_bootstrap, rabbitmq_url, redis_url, sqs_endpoint  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def moneta(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run the real CLI, as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "moneta", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path


def start_server(env: dict[str, str], log_path: Path, port: int | None = None) -> Server:
    port = port or free_port()
    env = {**env, "MONETA_PORT": str(port)}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moneta", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Server(url, env, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready: {log_path.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="moneta-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(workdir: Path) -> Iterator[str]:
    given = os.environ.get("MONETA_TEST_DATABASE_URL")
    if given:
        yield given
        return
    # Throwaway cluster: durability switches off for speed (never for `moneta serve`).
    pg = EmbeddedPostgres(workdir / "pg", FAST_UNSAFE_CONF)
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def base_env(database_url: str, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "MONETA_DATABASE_URL": database_url,
        "MONETA_DATA_DIR": str(workdir / "data"),
        "MONETA_WORKER_INTERVAL_S": "0.2",
        "MONETA_LOG_LEVEL": "warning",
        "MONETA_DB_POOL_MAX_SIZE": "40",
        # Webhook receivers in tests listen on 127.0.0.1 over plain http.
        "MONETA_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "MONETA_WEBHOOK_ALLOW_HTTP": "true",
    }
    moneta("migrate", env=env)
    return env


@pytest.fixture(scope="session")
def server(base_env: dict[str, str], workdir: Path) -> Iterator[Server]:
    srv = start_server(base_env, workdir / "server.log")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def admin_key(base_env: dict[str, str]) -> str:
    return moneta("keys", "create", "--scope", "admin", "--name", "tests", env=base_env).strip()


@pytest.fixture(scope="session")
def admin(server: Server, admin_key: str) -> Iterator[httpx.Client]:
    """An operator's client: an admin key bound to no ledger."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as client:
        yield client


@dataclass
class Stack:
    """A database of its own on the session's cluster, migrated, with its own server."""

    database_url: str
    env: dict[str, str]
    server: Server
    admin: httpx.Client
    db: psycopg.Connection[Any]


def redis_stack_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """STACK_ENV of modules whose server uses Redis, with a default rate limit far above
    what tests send (only keys with their own limit are limited)."""
    url: str = request.getfixturevalue("redis_url")
    return {"MONETA_REDIS_URL": url, "MONETA_RATE_LIMIT_PER_S": "10000"}


@pytest.fixture
def stack_tenant(isolated_stack: Stack) -> Iterator[Tenant]:
    """A fresh tenant on the module's isolated stack."""
    t = new_tenant(isolated_stack.admin, isolated_stack.server)
    yield t
    t.client.close()


def _module_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """A module's STACK_ENV: a dict, or a function of the request (to use fixtures)."""
    extra = getattr(request.module, "STACK_ENV", {})
    env: dict[str, str] = extra(request) if callable(extra) else extra
    return env


@pytest.fixture(scope="module")
def isolated_stack(
    request: pytest.FixtureRequest, database_url: str, base_env: dict[str, str], workdir: Path
) -> Iterator[Stack]:
    """For tests that consume every event of a database (the relay), or that need a server
    configured their own way (a module's STACK_ENV): the session database holds every
    other test's ledgers too."""
    name = f"iso_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    env = {
        **base_env,
        "MONETA_DATABASE_URL": url,
        "MONETA_DATA_DIR": str(workdir / name),
        **_module_env(request),
    }
    moneta("migrate", env=env)
    key = moneta("keys", "create", "--scope", "admin", "--name", name, env=env).strip()
    srv = start_server(env, workdir / f"{name}.log")
    try:
        with (
            httpx.Client(
                base_url=srv.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as admin,
            psycopg.connect(url, autocommit=True) as db,
        ):
            yield Stack(url, env, srv, admin, db)
    finally:
        stop_server(srv)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection for assertions that look under the API."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@dataclass
class Tenant:
    """A fresh ledger with a ledger-bound key of each scope."""

    ledger_id: str
    client: httpx.Client  # write scope, bound to this ledger
    keys: dict[str, str]

    def account(
        self,
        code: str,
        currency: str = "USD",
        normal_balance: str = "credit",
        overdraft_limit: int | None = 0,
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "ledger_id": self.ledger_id,
            "code": code,
            "currency": currency,
            "normal_balance": normal_balance,
            "overdraft_limit": overdraft_limit,
            **extra,
        }
        response = self.client.post("/v1/accounts", json=body)
        assert response.status_code == 201, response.text
        account: dict[str, Any] = response.json()
        return account

    def transfer(
        self, debit: str, credit: str, amount: int, expect: int = 201, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "ledger_id": self.ledger_id,
            "postings": [{"debit": debit, "credit": credit, "amount": amount}],
            **extra,
        }
        response = self.client.post("/v1/transactions", json=body)
        assert response.status_code == expect, response.text
        result: dict[str, Any] = response.json()
        return result

    def balance(self, account: str) -> dict[str, Any]:
        """Balance of an account by id."""
        response = self.client.get(f"/v1/accounts/{account}")
        assert response.status_code == 200, response.text
        balance: dict[str, Any] = response.json()["balance"]
        return balance


def new_tenant(admin: httpx.Client, server: Server) -> Tenant:
    ledger = admin.post("/v1/ledgers", json={"name": f"test-{uuid.uuid4().hex[:8]}"})
    assert ledger.status_code == 201, ledger.text
    ledger_id = ledger.json()["id"]
    keys = {}
    for scope in ("read", "write", "admin"):
        made = admin.post("/v1/api-keys", json={"scope": scope, "ledger_id": ledger_id})
        assert made.status_code == 201, made.text
        keys[scope] = made.json()["key"]
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {keys['write']}"}, timeout=30
    )
    return Tenant(ledger_id, client, keys)


@pytest.fixture
def tenant(admin: httpx.Client, server: Server) -> Iterator[Tenant]:
    t = new_tenant(admin, server)
    yield t
    t.client.close()


def ledger_snapshot(db: psycopg.Connection[Any], ledger_id: str) -> dict[str, Any]:
    """Everything a write could change in one ledger, to assert that a rejection changed nothing."""
    q = db.execute
    return {
        "balances": q(
            """SELECT account_id, posted_debits, posted_credits, pending_debits,
                      pending_credits, version FROM account_balances WHERE ledger_id = %s
               ORDER BY account_id""",
            (ledger_id,),
        ).fetchall(),
        "accounts": q(
            "SELECT id, code, metadata FROM accounts WHERE ledger_id = %s ORDER BY id",
            (ledger_id,),
        ).fetchall(),
        "transactions": q(
            """SELECT id, status, postings, reversed_by_id FROM transactions
               WHERE ledger_id = %s ORDER BY id""",
            (ledger_id,),
        ).fetchall(),
        "entries": q("SELECT count(*) FROM entries WHERE ledger_id = %s", (ledger_id,)).fetchone(),
        "outbox": q("SELECT count(*) FROM outbox WHERE ledger_id = %s", (ledger_id,)).fetchone(),
        "idempotency_keys": q("SELECT count(*) FROM idempotency_keys").fetchone(),
    }


def assert_ledger_invariants(db: psycopg.Connection[Any], ledger_id: str) -> None:
    """The double-entry invariants, checked in the database itself."""
    unbalanced = db.execute(
        """SELECT e.transaction_id FROM entries e WHERE e.ledger_id = %s
           GROUP BY e.transaction_id, e.pending
           HAVING sum(CASE WHEN e.direction = 'debit' THEN e.amount ELSE 0 END)
               <> sum(CASE WHEN e.direction = 'credit' THEN e.amount ELSE 0 END)""",
        (ledger_id,),
    ).fetchall()
    assert unbalanced == [], f"unbalanced transactions: {unbalanced}"
    per_currency = db.execute(
        """SELECT a.currency,
                  sum(CASE WHEN a.normal_balance = 'credit'
                      THEN b.posted_credits - b.posted_debits ELSE 0 END),
                  sum(CASE WHEN a.normal_balance = 'debit'
                      THEN b.posted_debits - b.posted_credits ELSE 0 END)
           FROM accounts a
           JOIN account_balances b ON b.ledger_id = a.ledger_id AND b.account_id = a.id
           WHERE a.ledger_id = %s GROUP BY a.currency""",
        (ledger_id,),
    ).fetchall()
    for currency, credit_normal, debit_normal in per_currency:
        assert credit_normal == debit_normal, f"{currency}: {credit_normal} != {debit_normal}"
    mismatched = db.execute(
        """SELECT b.account_id FROM account_balances b
           LEFT JOIN LATERAL (
             SELECT
               coalesce(sum(e.amount) FILTER (
                 WHERE NOT e.pending AND e.direction = 'debit'), 0) pd,
               coalesce(sum(e.amount) FILTER (
                 WHERE NOT e.pending AND e.direction = 'credit'), 0) pc,
               coalesce(sum(e.amount) FILTER (
                 WHERE e.pending AND e.direction = 'debit' AND t.status = 'pending'), 0) qd,
               coalesce(sum(e.amount) FILTER (
                 WHERE e.pending AND e.direction = 'credit' AND t.status = 'pending'), 0) qc
             FROM entries e JOIN transactions t
               ON t.ledger_id = e.ledger_id AND t.id = e.transaction_id
             WHERE e.ledger_id = b.ledger_id AND e.account_id = b.account_id) s ON true
           WHERE b.ledger_id = %s AND (b.posted_debits, b.posted_credits, b.pending_debits,
                 b.pending_credits) IS DISTINCT FROM (s.pd, s.pc, s.qd, s.qc)""",
        (ledger_id,),
    ).fetchall()
    assert mismatched == [], f"balances differ from their entries: {mismatched}"
    below_limit = db.execute(
        """SELECT a.code FROM accounts a JOIN account_balances b
             ON b.ledger_id = a.ledger_id AND b.account_id = a.id
           WHERE a.ledger_id = %s AND a.overdraft_limit IS NOT NULL
             AND moneta_available(a.normal_balance, b.posted_debits, b.posted_credits,
                                  b.pending_debits, b.pending_credits) < -a.overdraft_limit""",
        (ledger_id,),
    ).fetchall()
    assert below_limit == [], f"accounts below their overdraft limit: {below_limit}"
