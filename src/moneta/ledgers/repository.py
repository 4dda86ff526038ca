"""SQL for ledgers. Bodies come back as JSON text built by PostgreSQL."""

from __future__ import annotations

import uuid

from moneta.db.database import Connection

_LEDGER_JSON = """jsonb_build_object('id', l.id, 'name', l.name, 'metadata', l.metadata,
                                     'created_at', l.created_at)::text"""


async def insert(conn: Connection, name: str, metadata: dict[str, str]) -> str:
    body: str = await conn.fetchval(
        f"""WITH l AS (INSERT INTO ledgers (name, metadata) VALUES ($1, $2::jsonb) RETURNING *),
                 event AS (INSERT INTO outbox (ledger_id, type, data)
                           SELECT l.id, 'ledger.created', {_LEDGER_JSON}::jsonb FROM l)
            SELECT {_LEDGER_JSON} FROM l""",
        name,
        metadata,
    )
    return body


async def get(conn: Connection, ledger_id: uuid.UUID) -> str | None:
    body: str | None = await conn.fetchval(
        f"SELECT {_LEDGER_JSON} FROM ledgers l WHERE l.id = $1", ledger_id
    )
    return body


async def page(
    conn: Connection, only: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str]]:
    rows = await conn.fetch(
        f"""SELECT l.id, {_LEDGER_JSON} AS body FROM ledgers l
            WHERE ($1::uuid IS NULL OR l.id = $1) AND ($2::uuid IS NULL OR l.id > $2)
            ORDER BY l.id LIMIT $3""",
        only,
        after,
        limit,
    )
    return [(row["id"], row["body"]) for row in rows]
