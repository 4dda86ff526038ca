"""Account rules: tenancy, duplicate codes, point-in-time balances."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from moneta.accounts import repository
from moneta.accounts.schemas import AccountCreate
from moneta.auth.schemas import Principal
from moneta.db.database import Connection
from moneta.http.problems import MonetaError, not_found


async def create(conn: Connection, ledger_id: uuid.UUID, body: AccountCreate) -> str:
    ledger_found, account = await repository.insert(
        conn,
        ledger_id,
        body.code,
        body.currency,
        body.normal_balance,
        body.overdraft_limit,
        body.metadata,
    )
    if not ledger_found:
        raise not_found("ledger")
    if account is None:
        raise MonetaError(
            409, "duplicate_account_code", f"account code {body.code!r} exists in this ledger"
        )
    return account


async def get(conn: Connection, principal: Principal, account_id: uuid.UUID | None) -> str:
    body = await repository.get(conn, account_id, principal.ledger_id) if account_id else None
    if body is None:
        raise not_found("account")
    return body


async def balance_as_of(
    conn: Connection, principal: Principal, account_id: uuid.UUID | None, as_of: datetime
) -> str:
    found = (
        await repository.find_ledger(conn, account_id, principal.ledger_id) if account_id else None
    )
    if account_id is None or found is None:
        raise not_found("account")
    ledger_id, currency = found
    posted = await repository.posted_as_of(conn, ledger_id, account_id, as_of)
    return json.dumps(
        {
            "account_id": str(account_id),
            "currency": currency,
            "as_of": as_of.isoformat(),
            "posted": posted,
        }
    )


async def entries(
    conn: Connection,
    principal: Principal,
    account_id: uuid.UUID | None,
    before: int | None,
    limit: int,
) -> list[tuple[int, str]]:
    found = (
        await repository.find_ledger(conn, account_id, principal.ledger_id) if account_id else None
    )
    if account_id is None or found is None:
        raise not_found("account")
    return await repository.entries_page(conn, found[0], account_id, before, limit)
