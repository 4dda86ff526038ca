"""SQL for transactions: each write is one call of a server-side function (one round trip)."""

from __future__ import annotations

import uuid

from moneta.db.database import Connection
from moneta.http.problems import single_item_errors
from moneta.transactions.schemas import TransactionFields


async def create(conn: Connection, ledger_id: uuid.UUID, item: TransactionFields) -> str:
    """A single transaction is an atomic batch of one: one engine, and the fastest path."""
    with single_item_errors():
        rows = await create_batch(conn, ledger_id, True, [item])
    body = rows[0][3]
    assert body is not None  # an atomic batch either succeeds or raises
    return body


async def post(
    conn: Connection, ledger_id: uuid.UUID, transaction_id: uuid.UUID, amounts: list[int] | None
) -> str:
    body: str = await conn.fetchval(
        "SELECT moneta_post_transaction($1, $2, $3)::text", ledger_id, transaction_id, amounts
    )
    return body


async def void(conn: Connection, ledger_id: uuid.UUID, transaction_id: uuid.UUID) -> str:
    body: str = await conn.fetchval(
        "SELECT moneta_release_transaction($1, $2, 'voided')::text", ledger_id, transaction_id
    )
    return body


async def reverse(
    conn: Connection,
    ledger_id: uuid.UUID,
    transaction_id: uuid.UUID,
    description: str | None,
    external_id: str | None,
    metadata: dict[str, str],
) -> str:
    with single_item_errors():
        body: str = await conn.fetchval(
            "SELECT moneta_reverse_transaction($1, $2, $3, $4, $5::jsonb)::text",
            ledger_id,
            transaction_id,
            description,
            external_id,
            metadata,
        )
    return body


async def find_ledger(
    conn: Connection, transaction_id: uuid.UUID, only: uuid.UUID | None
) -> uuid.UUID | None:
    ledger_id: uuid.UUID | None = await conn.fetchval(
        "SELECT ledger_id FROM transactions WHERE id = $1 AND ($2::uuid IS NULL OR ledger_id = $2)",
        transaction_id,
        only,
    )
    return ledger_id


async def get(conn: Connection, transaction_id: uuid.UUID, only: uuid.UUID | None) -> str | None:
    body: str | None = await conn.fetchval(
        """SELECT moneta_transaction_json(t)::text FROM transactions t
           WHERE t.id = $1 AND ($2::uuid IS NULL OR t.ledger_id = $2)""",
        transaction_id,
        only,
    )
    return body


async def page(
    conn: Connection,
    ledger_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    status: str | None,
    metadata: dict[str, str],
    before: uuid.UUID | None,
    limit: int,
) -> list[tuple[uuid.UUID, str]]:
    rows = await conn.fetch(
        """SELECT t.id, moneta_transaction_json(t)::text AS body FROM transactions t
           WHERE ($1::uuid IS NULL OR t.ledger_id = $1)
             AND ($2::uuid IS NULL OR t.id IN (
                   SELECT e.transaction_id FROM entries e
                   WHERE e.account_id = $2 AND ($1::uuid IS NULL OR e.ledger_id = $1)))
             AND ($3::text IS NULL OR t.status = $3)
             AND t.metadata @> $4::jsonb
             AND ($5::uuid IS NULL OR t.id < $5)
           ORDER BY t.id DESC LIMIT $6""",
        ledger_id,
        account_id,
        status,
        metadata,
        before,
        limit,
    )
    return [(row["id"], row["body"]) for row in rows]


async def expire_due(conn: Connection, limit: int) -> int:
    expired = await conn.fetchval("SELECT moneta_expire_due($1)", limit)
    return int(expired or 0)


async def create_batch(
    conn: Connection,
    ledger_id: uuid.UUID,
    atomic: bool,
    items: list[TransactionFields],
) -> list[tuple[int, str | None, str | None, str | None]]:
    """One statement for the whole batch: (index, error code, detail, transaction JSON)."""
    posting_item: list[int] = []
    debits: list[str] = []
    credits: list[str] = []
    amounts: list[int] = []
    for number, item in enumerate(items, start=1):
        for posting in item.postings:
            posting_item.append(number)
            debits.append(posting.debit)
            credits.append(posting.credit)
            amounts.append(posting.amount)
    rows = await conn.fetch(
        """SELECT item, code, detail, body
           FROM moneta_create_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
        ledger_id,
        atomic,
        posting_item,
        debits,
        credits,
        amounts,
        [item.pending for item in items],
        [None if item.expires_in is None else float(item.expires_in) for item in items],
        [item.effective_at for item in items],
        [item.description for item in items],
        [item.external_id for item in items],
        [item.metadata for item in items],
        [None] * len(items),  # reverses_id: only reversals set it, in SQL
    )
    return [(row["item"], row["code"], row["detail"], row["body"]) for row in rows]
