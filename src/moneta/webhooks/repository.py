"""SQL for webhook endpoints, the fan-out of events into deliveries, and delivery state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from moneta.db.database import Connection

_ENDPOINT_JSON = """jsonb_build_object(
    'id', w.id, 'ledger_id', w.ledger_id, 'url', w.url, 'event_types', w.event_types,
    'description', w.description, 'created_at', w.created_at,
    'previous_secret_expires_at', CASE WHEN w.previous_secret_expires_at > now()
                                       THEN w.previous_secret_expires_at END)"""

_DELIVERY_JSON = """jsonb_build_object(
    'id', d.id, 'endpoint_id', d.endpoint_id, 'event_id', d.event_id,
    'event_type', d.event_type, 'event_sequence', d.event_sequence, 'status', d.status,
    'attempts', d.attempts,
    'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
    'last_status_code', d.last_status_code, 'last_error', d.last_error,
    'created_at', d.created_at, 'completed_at', d.completed_at,
    'log', coalesce((SELECT jsonb_agg(jsonb_build_object(
                       'attempted_at', a.attempted_at, 'status_code', a.status_code,
                       'error', a.error, 'duration_ms', a.duration_ms) ORDER BY a.id)
                       FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb))"""


async def insert_endpoint(
    conn: Connection,
    ledger_id: uuid.UUID,
    url: str,
    event_types: list[str],
    description: str | None,
    secret: str,
) -> str | None:
    """The new endpoint's JSON (with its secret), or None if the ledger does not exist."""
    body: str | None = await conn.fetchval(
        f"""WITH w AS (INSERT INTO webhook_endpoints (ledger_id, url, event_types, description,
                                                      secret)
                       SELECT id, $2, $3, $4, $5 FROM ledgers WHERE id = $1 RETURNING *)
            SELECT ({_ENDPOINT_JSON} || jsonb_build_object('secret', w.secret))::text FROM w""",
        ledger_id,
        url,
        event_types,
        description,
        secret,
    )
    return body


async def get_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
    """(ledger_id, JSON) of a live endpoint."""
    row = await conn.fetchrow(
        f"""SELECT w.ledger_id, {_ENDPOINT_JSON}::text AS body FROM webhook_endpoints w
             WHERE w.id = $1 AND w.deleted_at IS NULL""",
        endpoint_id,
    )
    return (row["ledger_id"], row["body"]) if row else None


async def page_endpoints(
    conn: Connection, ledger_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        f"""SELECT w.id::text AS id, {_ENDPOINT_JSON}::text AS body FROM webhook_endpoints w
             WHERE w.deleted_at IS NULL AND ($1::uuid IS NULL OR w.ledger_id = $1)
               AND ($2::uuid IS NULL OR w.id > $2)
             ORDER BY w.id LIMIT $3""",
        ledger_id,
        after,
        limit,
    )
    return [(row["id"], row["body"]) for row in rows]


async def delete_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> bool:
    """Soft delete: the delivery log stays readable to operators; nothing more is sent."""
    done: str = await conn.execute(
        "UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
        endpoint_id,
    )
    return done.endswith(" 1")


async def rotate_secret(
    conn: Connection, endpoint_id: uuid.UUID, secret: str, overlap_s: int
) -> str | None:
    body: str | None = await conn.fetchval(
        f"""UPDATE webhook_endpoints w
               SET previous_secret = w.secret, secret = $2,
                   previous_secret_expires_at = now() + make_interval(secs => $3)
             WHERE w.id = $1 AND w.deleted_at IS NULL
         RETURNING ({_ENDPOINT_JSON} || jsonb_build_object('secret', w.secret))::text""",
        endpoint_id,
        secret,
        float(overlap_s),
    )
    return body


async def page_deliveries(
    conn: Connection,
    endpoint_id: uuid.UUID,
    status: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        f"""SELECT d.id::text AS id, {_DELIVERY_JSON}::text AS body FROM webhook_deliveries d
             WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.status = $2)
               AND ($3::uuid IS NULL OR d.id > $3)
             ORDER BY d.id LIMIT $4""",
        endpoint_id,
        status,
        after,
        limit,
    )
    return [(row["id"], row["body"]) for row in rows]


async def redeliver(
    conn: Connection, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, window_s: float
) -> tuple[bool, str] | None:
    """Queue a delivery again now, whatever its state, with a fresh retry window.
    (False, JSON) while an attempt is in flight: its result would overwrite this."""
    row = await conn.fetchrow(
        f"""WITH target AS (
              SELECT id, locked_until > now() AS in_flight FROM webhook_deliveries
               WHERE id = $2 AND endpoint_id = $1 FOR UPDATE
            ), queued AS (
              UPDATE webhook_deliveries d
                 SET status = 'pending', next_attempt_at = now(), completed_at = NULL,
                     give_up_at = now() + make_interval(secs => $3)
                FROM target WHERE d.id = target.id AND target.in_flight IS NOT TRUE
            RETURNING d.*
            )
            SELECT NOT t.in_flight IS TRUE AS queued,
                   coalesce((SELECT {_DELIVERY_JSON}::text FROM queued d),
                            (SELECT {_DELIVERY_JSON}::text FROM webhook_deliveries d
                              WHERE d.id = t.id)) AS body
              FROM target t""",
        endpoint_id,
        delivery_id,
        window_s,
    )
    return (row["queued"], row["body"]) if row else None


async def fan_out(
    conn: Connection, ledger_id: uuid.UUID, after: int, limit: int, window_s: float
) -> int | None:
    """Offer the ledger's next events to its endpoints: one delivery per (endpoint, event)
    that subscribes to the type and existed when the event was written. Returns the last
    sequence covered (the caller's new cursor), None if there was nothing after `after`.
    Run in the transaction that moves the cursor, so each event is offered exactly once."""
    last: int | None = await conn.fetchval(
        """WITH events AS (
             SELECT e.sequence, o.event_id, o.type, o.created_at
               FROM event_log e JOIN outbox o ON o.ledger_id = e.ledger_id AND o.id = e.outbox_id
              WHERE e.ledger_id = $1 AND e.sequence > $2
              ORDER BY e.sequence LIMIT $3
           ), offered AS (
             INSERT INTO webhook_deliveries (endpoint_id, ledger_id, event_sequence, event_id,
                                             event_type, give_up_at)
             SELECT w.id, $1, ev.sequence, ev.event_id, ev.type,
                    now() + make_interval(secs => $4)
               FROM events ev JOIN webhook_endpoints w
                 ON w.ledger_id = $1 AND w.deleted_at IS NULL AND w.created_at <= ev.created_at
                AND (ev.type = ANY (w.event_types) OR '*' = ANY (w.event_types))
             ON CONFLICT DO NOTHING
           )
           SELECT max(sequence) FROM events""",
        ledger_id,
        after,
        limit,
        window_s,
    )
    return last


@dataclass(frozen=True)
class DueDelivery:
    id: uuid.UUID
    url: str
    secrets: list[str]
    attempts: int  # including the one about to be made
    give_up_at: datetime
    event_id: uuid.UUID
    event_type: str
    body: bytes
    endpoint_deleted: bool


async def claim_due(conn: Connection, limit: int, lease_s: float) -> list[DueDelivery]:
    """Claim deliveries whose time has come; the claim expires on its own if this
    dispatcher dies mid-attempt, and another one retries."""
    rows = await conn.fetch(
        """WITH claimed AS (
             UPDATE webhook_deliveries d
                SET locked_until = now() + make_interval(secs => $2), attempts = d.attempts + 1
              WHERE d.id IN (SELECT id FROM webhook_deliveries
                              WHERE status = 'pending' AND next_attempt_at <= now()
                                AND (locked_until IS NULL OR locked_until < now())
                              ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING d.*
           )
           SELECT c.id, c.attempts, c.give_up_at, c.event_id, c.event_type, w.url,
                  w.deleted_at IS NOT NULL AS endpoint_deleted,
                  array_remove(ARRAY[w.secret, CASE WHEN w.previous_secret_expires_at > now()
                                                    THEN w.previous_secret END], NULL) AS secrets,
                  moneta_event_json(e, o)::text AS body
             FROM claimed c
             JOIN webhook_endpoints w ON w.id = c.endpoint_id
             JOIN event_log e ON e.ledger_id = c.ledger_id AND e.sequence = c.event_sequence
             JOIN outbox o ON o.ledger_id = e.ledger_id AND o.id = e.outbox_id""",
        limit,
        lease_s,
    )
    return [
        DueDelivery(
            row["id"],
            row["url"],
            list(row["secrets"]),
            row["attempts"],
            row["give_up_at"],
            row["event_id"],
            row["event_type"],
            row["body"].encode(),
            row["endpoint_deleted"],
        )
        for row in rows
    ]


async def record_attempt(
    conn: Connection,
    delivery_id: uuid.UUID,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    outcome: str,
    retry_in_s: float,
) -> None:
    """Log the attempt and settle the delivery: succeeded, dead, or pending again later."""
    await conn.execute(
        """WITH logged AS (
             INSERT INTO webhook_attempts (delivery_id, status_code, error, duration_ms)
             VALUES ($1, $2, $3, $4)
           )
           UPDATE webhook_deliveries
              SET status = $5, last_status_code = $2, last_error = $3, locked_until = NULL,
                  next_attempt_at = now() + make_interval(secs => $6),
                  completed_at = CASE WHEN $5 = 'pending' THEN NULL ELSE now() END
            WHERE id = $1""",
        delivery_id,
        status_code,
        error,
        duration_ms,
        outcome,
        retry_in_s,
    )
