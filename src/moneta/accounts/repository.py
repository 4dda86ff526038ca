"""SQL for accounts, balances and entries. Bodies come back as JSON text from PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from moneta.db.database import Connection


async def insert(
    conn: Connection,
    ledger_id: uuid.UUID,
    code: str,
    currency: str,
    normal_balance: str,
    overdraft_limit: int | None,
    metadata: dict[str, str],
) -> tuple[bool, str | None]:
    """(ledger found, account JSON or None when the code is taken)."""
    row = await conn.fetchrow(
        """WITH l AS (SELECT id FROM ledgers WHERE id = $1),
                a AS (INSERT INTO accounts (ledger_id, code, currency, normal_balance,
                                            overdraft_limit, metadata)
                      SELECT l.id, $2, $3, $4, $5::numeric, $6::jsonb FROM l
                      ON CONFLICT (ledger_id, code) DO NOTHING RETURNING *),
                b AS (INSERT INTO balances (ledger_id, account_id)
                      SELECT ledger_id, id FROM a RETURNING *),
                j AS (SELECT moneta_account_json(ROW(a.*)::accounts, ROW(b.*)::account_balances)
                             AS doc
                      FROM a JOIN b ON b.account_id = a.id),
                e AS (INSERT INTO outbox (ledger_id, type, data)
                      SELECT $1, 'account.created', doc FROM j)
           SELECT EXISTS (SELECT 1 FROM l) AS ledger_found, (SELECT doc::text FROM j) AS body""",
        ledger_id,
        code,
        currency,
        normal_balance,
        overdraft_limit,
        metadata,
    )
    assert row is not None
    return bool(row["ledger_found"]), row["body"]


async def get(conn: Connection, account_id: uuid.UUID, only: uuid.UUID | None) -> str | None:
    body: str | None = await conn.fetchval(
        """SELECT moneta_account_json(a, b)::text FROM accounts a
           JOIN account_balances b ON b.ledger_id = a.ledger_id AND b.account_id = a.id
           WHERE a.id = $1 AND ($2::uuid IS NULL OR a.ledger_id = $2)""",
        account_id,
        only,
    )
    return body


async def find_ledger(
    conn: Connection, account_id: uuid.UUID, only: uuid.UUID | None
) -> tuple[uuid.UUID, str] | None:
    """(ledger id, currency) of a visible account."""
    row = await conn.fetchrow(
        """SELECT ledger_id, currency FROM accounts
           WHERE id = $1 AND ($2::uuid IS NULL OR ledger_id = $2)""",
        account_id,
        only,
    )
    return (row["ledger_id"], row["currency"]) if row else None


async def page(
    conn: Connection,
    ledger_id: uuid.UUID | None,
    code: str | None,
    metadata: dict[str, str],
    after: uuid.UUID | None,
    limit: int,
) -> list[tuple[uuid.UUID, str]]:
    rows = await conn.fetch(
        """SELECT a.id, moneta_account_json(a, b)::text AS body FROM accounts a
           JOIN account_balances b ON b.ledger_id = a.ledger_id AND b.account_id = a.id
           WHERE ($1::uuid IS NULL OR a.ledger_id = $1) AND ($2::text IS NULL OR a.code = $2)
             AND a.metadata @> $3::jsonb AND ($4::uuid IS NULL OR a.id > $4)
           ORDER BY a.id LIMIT $5""",
        ledger_id,
        code,
        metadata,
        after,
        limit,
    )
    return [(row["id"], row["body"]) for row in rows]


async def posted_as_of(
    conn: Connection, ledger_id: uuid.UUID, account_id: uuid.UUID, as_of: datetime
) -> int:
    value = await conn.fetchval(
        """SELECT coalesce(sum(CASE WHEN e.direction = a.normal_balance THEN e.amount
                                    ELSE -e.amount END), 0)
           FROM accounts a JOIN entries e ON e.ledger_id = a.ledger_id AND e.account_id = a.id
           WHERE a.ledger_id = $1 AND a.id = $2 AND NOT e.pending AND e.effective_at <= $3""",
        ledger_id,
        account_id,
        as_of,
    )
    return int(value)


async def entries_page(
    conn: Connection, ledger_id: uuid.UUID, account_id: uuid.UUID, before: int | None, limit: int
) -> list[tuple[int, str]]:
    rows = await conn.fetch(
        """SELECT e.id, jsonb_build_object(
                    'id', e.id, 'transaction_id', e.transaction_id, 'account_id', e.account_id,
                    'posting_index', e.posting_index, 'direction', e.direction,
                    'amount', e.amount, 'pending', e.pending, 'balance_after', e.balance_after,
                    'effective_at', e.effective_at, 'created_at', e.created_at)::text AS body
           FROM entries e
           WHERE e.ledger_id = $1 AND e.account_id = $2 AND ($3::bigint IS NULL OR e.id < $3)
           ORDER BY e.id DESC LIMIT $4""",
        ledger_id,
        account_id,
        before,
        limit,
    )
    return [(row["id"], row["body"]) for row in rows]


async def fold_deltas(conn: Connection, limit: int) -> int:
    """Fold up to `limit` unlocked balance increments of limit-free accounts into balances."""
    folded = await conn.fetchval("SELECT moneta_fold_deltas($1)", limit)
    return int(folded or 0)
