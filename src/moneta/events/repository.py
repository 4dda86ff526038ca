"""SQL for reading the outbox without gaps.

Identity values are taken before commit, so a row with a smaller `id` can become visible
after a larger one. Readers therefore page by (txid, id) and only see rows written by
transactions older than every transaction still running (`pg_snapshot_xmin`): no row can
later appear behind the cursor. Per-ledger commit order is the event stream's job (issue
on the relay); within one account, row locks already serialize writers.
"""

from __future__ import annotations

import uuid

from moneta.db.database import Connection


async def page(
    conn: Connection, ledger_id: uuid.UUID, after: tuple[int, int] | None, limit: int
) -> list[tuple[int, int, str]]:
    after_txid, after_id = after if after is not None else (-1, -1)
    rows = await conn.fetch(
        """SELECT o.txid::text::bigint AS txid, o.id, jsonb_build_object(
                    'id', o.event_id, 'type', o.type, 'ledger_id', o.ledger_id,
                    'sequence', o.id, 'created_at', o.created_at, 'data', o.data)::text AS body
           FROM outbox o
           WHERE o.ledger_id = $1
             AND (o.txid, o.id) > ($2::text::xid8, $3)
             AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
           ORDER BY o.txid, o.id LIMIT $4""",
        ledger_id,
        str(after_txid) if after_txid >= 0 else "0",
        after_id,
        limit,
    )
    return [(row["txid"], row["id"], row["body"]) for row in rows]
