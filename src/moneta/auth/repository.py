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
    rate_limit: tuple[float, int] | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO api_keys (id, secret_hash, scope, ledger_id, name, rate_limit_per_s,
                                 rate_limit_burst)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           RETURNING id, scope, ledger_id, name, created_at, rate_limit_per_s::float8,
                     rate_limit_burst""",
        key_id,
        secret_hash,
        scope,
        ledger_id,
        name,
        rate_limit[0] if rate_limit else None,
        rate_limit[1] if rate_limit else None,
    )
    assert row is not None
    return dict(row)


async def find_active(conn: Connection, key_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT id, secret_hash, scope, ledger_id, rate_limit_per_s::float8,
                  rate_limit_burst
             FROM api_keys WHERE id = $1 AND revoked_at IS NULL""",
        key_id,
    )
    return dict(row) if row else None


async def ledger_exists(conn: Connection, ledger_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM ledgers WHERE id = $1)", ledger_id)
    )


async def revoke(conn: Connection, key_id: uuid.UUID, ledger_id: uuid.UUID | None) -> bool:
    """Revoke a live key; a ledger-bound caller (`ledger_id`) only its own ledger's keys."""
    done: str = await conn.execute(
        """UPDATE api_keys SET revoked_at = now()
            WHERE id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR ledger_id = $2)""",
        key_id,
        ledger_id,
    )
    return done.endswith(" 1")
