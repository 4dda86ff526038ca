"""The benchmark's ledger: N funded wallets, a funding account and a fee account.

- a ledger and a write key bound to it (the load runs as a tenant would);
- `bank:cash`: debit-normal, unlimited (the money comes from here);
- `fees`: credit-normal, unlimited (the `hot` workload pays a fee into it every transfer);
- N wallets `bench:w:<i>`: credit-normal, overdraft limit 0.

Below ACCOUNTS_VIA_API_MAX wallets (or without database access) accounts are created
through the API; above it by set-based SQL writing the same rows the API writes
(accounts, balances, an `account.created` outbox row each). Every wallet is then funded
with FUNDING by real transactions, so the ledger balances: through the batch endpoint if
the server has it, else through POST /v1/transactions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg

from bench.client import ApiError, Client
from moneta.db.database import asyncpg_dsn

FUNDING = 10**12
ACCOUNTS_VIA_API_MAX = 5_000
SQL_ACCOUNTS_CHUNK = 10_000
POSTINGS_PER_TX = 100  # MAX_POSTINGS of POST /v1/transactions
TX_PER_BATCH = 10  # funding transactions per batch request (1,000 wallets)
WALLET_PREFIX = "bench:w:"
BATCH_PATH = "/v1/transactions/batch"


@dataclass
class BenchLedger:
    ledger_id: str
    key: str  # write scope, bound to the ledger
    cash: str
    fees: str
    wallets: list[str]
    funded: int  # wallets[:funded] have money; the rest only receive
    batch_available: bool
    accounts_via: str
    funding_via: str
    setup_s: float


async def _gather_limited(jobs: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def _create_account(
    api: Client, ledger_id: str, code: str, normal: str, limit: int | None
) -> str:
    body = {
        "ledger_id": ledger_id,
        "code": code,
        "currency": "USD",
        "normal_balance": normal,
        "overdraft_limit": limit,
    }
    account = await api.call("POST", "/v1/accounts", body, expect=201)
    return str(account["id"])


async def _wallets_via_api(api: Client, ledger_id: str, n: int) -> list[str]:
    jobs = [
        partial(_create_account, api, ledger_id, f"{WALLET_PREFIX}{i}", "credit", 0)
        for i in range(n)
    ]
    return await _gather_limited(jobs, 16)


# {balance_type}: the row type moneta_account_json() takes (the API's own insert does the same).
_INSERT_WALLETS = """
WITH a AS (
  INSERT INTO accounts (ledger_id, code, currency, normal_balance, overdraft_limit, metadata)
  SELECT $1, $2 || g, 'USD', 'credit', 0, '{{}}'::jsonb FROM generate_series($3::int, $4::int) g
  RETURNING *
), b AS (
  INSERT INTO balances (ledger_id, account_id) SELECT ledger_id, id FROM a RETURNING *
), e AS (
  INSERT INTO outbox (ledger_id, type, data)
  SELECT a.ledger_id, 'account.created',
         moneta_account_json(ROW(a.*)::accounts, ROW(b.*)::{balance_type})
    FROM a JOIN b ON b.account_id = a.id
)
SELECT count(*) FROM a
"""


async def _wallets_via_sql(database_url: str, ledger_id: str, n: int) -> list[str]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        ledger = uuid.UUID(ledger_id)
        # The account JSON takes the effective-balance row type where the schema has one.
        has_view = await conn.fetchval("SELECT to_regclass('account_balances') IS NOT NULL")
        sql = _INSERT_WALLETS.format(balance_type="account_balances" if has_view else "balances")
        for start in range(0, n, SQL_ACCOUNTS_CHUNK):
            end = min(n, start + SQL_ACCOUNTS_CHUNK) - 1
            await conn.fetchval(sql, ledger, WALLET_PREFIX, start, end)
        rows = await conn.fetch(
            "SELECT id::text, code FROM accounts WHERE ledger_id = $1 AND code LIKE $2",
            ledger,
            WALLET_PREFIX + "%",
        )
    finally:
        await conn.close()
    by_index = {int(r["code"][len(WALLET_PREFIX) :]): str(r["id"]) for r in rows}
    return [by_index[i] for i in range(n)]


def _funding_tx(cash: str, wallets: Sequence[str]) -> dict[str, Any]:
    return {
        "postings": [{"debit": cash, "credit": w, "amount": FUNDING} for w in wallets],
        "description": "bench funding",
    }


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _fund_via_batch(api: Client, ledger_id: str, cash: str, wallets: list[str]) -> bool:
    """Fund through POST /v1/transactions/batch; False if the server has no such endpoint."""
    groups = _chunks(wallets, POSTINGS_PER_TX * TX_PER_BATCH)
    bodies = [
        {
            "ledger_id": ledger_id,
            "atomic": True,
            "transactions": [_funding_tx(cash, c) for c in _chunks(g, POSTINGS_PER_TX)],
        }
        for g in groups
    ]
    if not bodies:
        return True
    status, raw = await api.send("POST", BATCH_PATH, bodies[0])
    if status in (404, 405):
        return False
    if status != 201:
        raise ApiError("funding batch", status, raw)

    async def send(body: dict[str, Any]) -> None:
        await api.call("POST", BATCH_PATH, body, expect=201)

    await _gather_limited([partial(send, b) for b in bodies[1:]], 4)
    return True


async def _fund_via_api(api: Client, ledger_id: str, cash: str, wallets: list[str]) -> None:
    async def send(group: Sequence[str]) -> None:
        body = {"ledger_id": ledger_id, **_funding_tx(cash, group)}
        await api.call("POST", "/v1/transactions", body, expect=201)

    await _gather_limited([partial(send, g) for g in _chunks(wallets, POSTINGS_PER_TX)], 8)


async def create_ledger(
    url: str, admin_key: str, accounts: int, database_url: str | None, funded: int | None = None
) -> BenchLedger:
    """Create and fund the benchmark's ledger; `database_url` enables the SQL shortcuts."""
    t0 = time.monotonic()
    async with Client(url, admin_key, 16) as admin:
        ledger = await admin.call(
            "POST", "/v1/ledgers", {"name": f"bench-{uuid.uuid4().hex[:8]}"}, expect=201
        )
        ledger_id = str(ledger["id"])
        made = await admin.call(
            "POST", "/v1/api-keys", {"scope": "write", "ledger_id": ledger_id}, expect=201
        )
        key = str(made["key"])
    async with Client(url, key, 16) as api:
        cash = await _create_account(api, ledger_id, "bank:cash", "debit", None)
        fees = await _create_account(api, ledger_id, "fees", "credit", None)
        if database_url and accounts >= ACCOUNTS_VIA_API_MAX:
            wallets = await _wallets_via_sql(database_url, ledger_id, accounts)
            accounts_via = "sql"
        else:
            wallets = await _wallets_via_api(api, ledger_id, accounts)
            accounts_via = "api"
        funded_count = min(funded or len(wallets), len(wallets))
        batch_available = await _fund_via_batch(api, ledger_id, cash, wallets[:funded_count])
        if batch_available:
            funding_via = "batch endpoint"
        else:
            await _fund_via_api(api, ledger_id, cash, wallets[:funded_count])
            funding_via = "POST /v1/transactions"
    return BenchLedger(
        ledger_id=ledger_id,
        key=key,
        cash=cash,
        fees=fees,
        wallets=wallets,
        funded=funded_count,
        batch_available=batch_available,
        accounts_via=accounts_via,
        funding_via=funding_via,
        setup_s=time.monotonic() - t0,
    )
