"""SQL over the sequenced event log: pages for the API, batches for consumers, cursors."""

from __future__ import annotations

import uuid

from moneta.db.database import Connection
from moneta.events.sinks import Event


async def ledgers_behind(conn: Connection, consumer: str, limit: int) -> list[uuid.UUID]:
    """Ledgers with events this consumer has not delivered yet."""
    rows = await conn.fetch(
        """SELECT h.ledger_id FROM event_heads h
             LEFT JOIN event_cursors c ON c.consumer = $1 AND c.ledger_id = h.ledger_id
            WHERE h.sequence > coalesce(c.sequence, 0)
            ORDER BY coalesce(c.updated_at, '-infinity'::timestamptz) LIMIT $2""",
        consumer,
        limit,
    )
    return [row["ledger_id"] for row in rows]


async def cursor(conn: Connection, consumer: str, ledger_id: uuid.UUID) -> int:
    position: int | None = await conn.fetchval(
        "SELECT sequence FROM event_cursors WHERE consumer = $1 AND ledger_id = $2",
        consumer,
        ledger_id,
    )
    return position or 0


async def advance_cursor(
    conn: Connection, consumer: str, ledger_id: uuid.UUID, sequence: int
) -> None:
    """Never moves backwards: a slow, superseded replica cannot undo newer progress."""
    await conn.execute(
        """INSERT INTO event_cursors (consumer, ledger_id, sequence) VALUES ($1, $2, $3)
           ON CONFLICT (consumer, ledger_id) DO UPDATE
             SET sequence = greatest(event_cursors.sequence, excluded.sequence),
                 updated_at = now()""",
        consumer,
        ledger_id,
        sequence,
    )


async def lags(conn: Connection, consumers: list[str] | None) -> dict[str, tuple[int, float]]:
    """Per consumer (these, or every one with a cursor): events not yet delivered, and the
    age in seconds of the oldest of them, over all ledgers."""
    rows = await conn.fetch(
        """WITH c AS (SELECT unnest($1::text[]) AS consumer
                      UNION SELECT DISTINCT consumer FROM event_cursors WHERE $1 IS NULL)
           SELECT c.consumer,
                  coalesce(sum(h.sequence - coalesce(cc.sequence, 0))
                           FILTER (WHERE h.sequence > coalesce(cc.sequence, 0)), 0)::bigint
                    AS events,
                  coalesce(extract(epoch FROM now() - min(o.created_at)), 0)::float8 AS age
             FROM c CROSS JOIN event_heads h
             LEFT JOIN event_cursors cc ON cc.consumer = c.consumer AND cc.ledger_id = h.ledger_id
             LEFT JOIN event_log e ON e.ledger_id = h.ledger_id
                                  AND e.sequence = coalesce(cc.sequence, 0) + 1
             LEFT JOIN outbox o ON o.ledger_id = e.ledger_id AND o.id = e.outbox_id
            GROUP BY c.consumer""",
        consumers,
    )
    return {row["consumer"]: (int(row["events"]), float(row["age"])) for row in rows}


async def batch(conn: Connection, ledger_id: uuid.UUID, after: int, limit: int) -> list[Event]:
    """The ledger's events after `after`, in sequence order: what a consumer delivers
    next, and a page of GET /v1/events."""
    rows = await conn.fetch(
        """SELECT e.sequence, o.event_id, o.type, moneta_event_json(e, o)::text AS body
             FROM event_log e JOIN outbox o ON o.ledger_id = e.ledger_id AND o.id = e.outbox_id
            WHERE e.ledger_id = $1 AND e.sequence > $2
            ORDER BY e.sequence LIMIT $3""",
        ledger_id,
        after,
        limit,
    )
    return [
        Event(ledger_id, row["sequence"], row["event_id"], row["type"], row["body"].encode())
        for row in rows
    ]
