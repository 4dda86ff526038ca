"""SQL for API keys."""

from __future__ import annotations

import uuid
from typing import Any

from moneta.db.database import Connection


async def insert(
    conn: Connection,
    key_id: uuid.UUID,
    secret_hash: bytes,
    scope: str,
    ledger_id: uuid.UUID | None,
    name: str,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO api_keys (id, secret_hash, scope, ledger_id, name)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, scope, ledger_id, name, created_at""",
        key_id,
        secret_hash,
        scope,
        ledger_id,
        name,
    )
    assert row is not None
    return dict(row)


async def find_active(conn: Connection, key_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT id, secret_hash, scope, ledger_id FROM api_keys
           WHERE id = $1 AND revoked_at IS NULL""",
        key_id,
    )
    return dict(row) if row else None


async def ledger_exists(conn: Connection, ledger_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ledgers WHERE id = $1)", ledger_id)
    )
