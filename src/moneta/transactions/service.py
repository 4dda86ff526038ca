"""Transaction rules that belong before the database: tenancy, time bounds, post amounts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from moneta.auth.schemas import Principal
from moneta.db.database import Connection
from moneta.http.problems import MonetaError, not_found
from moneta.transactions import repository
from moneta.transactions.schemas import TransactionCreate, TransactionPost, TransactionReverse

# Clocks drift: an effective_at a little ahead of ours is accepted, a future date is not.
MAX_CLOCK_SKEW = timedelta(seconds=60)


async def create(conn: Connection, ledger_id: uuid.UUID, body: TransactionCreate) -> str:
    if body.effective_at is not None and body.effective_at > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise MonetaError(422, "effective_at_in_future", "effective_at may not be in the future")
    return await repository.create(
        conn,
        ledger_id,
        [p.debit for p in body.postings],
        [p.credit for p in body.postings],
        [p.amount for p in body.postings],
        body.pending,
        body.expires_in,
        body.effective_at,
        body.description,
        body.external_id,
        body.metadata,
    )


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
