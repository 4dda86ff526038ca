"""Transaction rules that belong before the database: tenancy, time bounds, post amounts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from moneta.auth.schemas import Principal
from moneta.db.database import Connection
from moneta.http.problems import MonetaError, ledger_status, not_found
from moneta.transactions import repository
from moneta.transactions.schemas import (
    BatchCreate,
    TransactionCreate,
    TransactionFields,
    TransactionPost,
    TransactionReverse,
)

# Clocks drift: an effective_at a little ahead of ours is accepted, a future date is not.
MAX_CLOCK_SKEW = timedelta(seconds=60)


def _check_effective_at(item: TransactionFields, index: int | None = None) -> None:
    if item.effective_at is not None and item.effective_at > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise MonetaError(
            422,
            "effective_at_in_future",
            "effective_at may not be in the future",
            extra=None if index is None else {"index": index},
        )


async def create(conn: Connection, ledger_id: uuid.UUID, body: TransactionCreate) -> str:
    _check_effective_at(body)
    return await repository.create(conn, ledger_id, body)


async def create_batch(conn: Connection, ledger_id: uuid.UUID, body: BatchCreate) -> str:
    """Runs the batch in one statement and splices the per-item JSON into the envelope."""
    for index, item in enumerate(body.transactions):
        _check_effective_at(item, index)
    rows = await repository.create_batch(conn, ledger_id, body.atomic, body.transactions)
    results: list[str] = []
    failed = 0
    for index, code, detail, transaction in rows:
        if code is None:
            results.append(f'{{"index":{index},"status":201,"transaction":{transaction}}}')
            continue
        failed += 1
        problem = MonetaError(ledger_status(code), code, detail or code).body().decode()
        results.append(f'{{"index":{index},"status":{ledger_status(code)},"error":{problem}}}')
    head = json.dumps({"atomic": body.atomic, "succeeded": len(rows) - failed, "failed": failed})
    return head[:-1] + ',"results":[' + ",".join(results) + "]}"


async def locate(
    conn: Connection, principal: Principal, transaction_id: uuid.UUID | None
) -> uuid.UUID:
    """The ledger of a transaction the caller may see; anything else is a 404.

    A ledger-bound key needs no look-up: the ledger's function answers not_found itself."""
    if transaction_id is not None and principal.ledger_id is not None:
        return principal.ledger_id
    found = (
        await repository.find_ledger(conn, transaction_id, principal.ledger_id)
        if transaction_id
        else None
    )
    if found is None:
        raise not_found("transaction")
    return found


async def post(
    conn: Connection,
    principal: Principal,
    transaction_id: uuid.UUID | None,
    body: TransactionPost | None,
) -> str:
    ledger_id = await locate(conn, principal, transaction_id)
    assert transaction_id is not None
    amounts = None
    if body is not None and body.amount is not None:
        amounts = [body.amount]
    elif body is not None and body.amounts is not None:
        amounts = body.amounts
    return await repository.post(conn, ledger_id, transaction_id, amounts)


async def void(conn: Connection, principal: Principal, transaction_id: uuid.UUID | None) -> str:
    ledger_id = await locate(conn, principal, transaction_id)
    assert transaction_id is not None
    return await repository.void(conn, ledger_id, transaction_id)


async def reverse(
    conn: Connection,
    principal: Principal,
    transaction_id: uuid.UUID | None,
    body: TransactionReverse | None,
) -> str:
    ledger_id = await locate(conn, principal, transaction_id)
    assert transaction_id is not None
    body = body or TransactionReverse()
    return await repository.reverse(
        conn, ledger_id, transaction_id, body.description, body.external_id, body.metadata
    )


async def get(conn: Connection, principal: Principal, transaction_id: uuid.UUID | None) -> str:
    body = (
        await repository.get(conn, transaction_id, principal.ledger_id) if transaction_id else None
    )
    if body is None:
        raise not_found("transaction")
    return body
