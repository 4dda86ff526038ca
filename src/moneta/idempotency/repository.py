"""SQL for idempotency keys."""

from __future__ import annotations

import uuid
from typing import Any

from moneta.db.database import Connection


async def claim(conn: Connection, api_key_id: uuid.UUID, key: str, fingerprint: bytes) -> bool:
    """Insert the key; False if it exists. A concurrent claimer blocks until we finish."""
    claimed = await conn.fetchval(
        """INSERT INTO idempotency_keys (api_key_id, key, fingerprint) VALUES ($1, $2, $3)
           ON CONFLICT (api_key_id, key) DO NOTHING RETURNING true""",
        api_key_id,
        key,
        fingerprint,
    )
    return bool(claimed)


async def find(conn: Connection, api_key_id: uuid.UUID, key: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT fingerprint, status_code, response FROM idempotency_keys
           WHERE api_key_id = $1 AND key = $2""",
        api_key_id,
        key,
    )
    return dict(row) if row else None


async def store(
    conn: Connection, api_key_id: uuid.UUID, key: str, status_code: int, response: bytes
) -> None:
    await conn.execute(
        """UPDATE idempotency_keys SET status_code = $3, response = $4
           WHERE api_key_id = $1 AND key = $2""",
        api_key_id,
        key,
        status_code,
        response,
    )


async def delete_older_than(conn: Connection, retention_s: int, limit: int) -> int:
    deleted = await conn.fetchval(
        """WITH gone AS (
             DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
               SELECT ctid FROM idempotency_keys
               WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))
             RETURNING 1)
           SELECT count(*) FROM gone""",
        float(retention_s),
        limit,
    )
    return int(deleted or 0)
