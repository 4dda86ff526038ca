-- Event stream. The outbox is written by the engine in the same transaction as each
-- change, but identity values and xids are taken before commit, so neither is commit
-- order. Logical decoding of the outbox's inserts is: the sequencer (moneta/events/
-- sequencer.py) reads the `moneta_outbox` publication through a slot and numbers each
-- ledger's events here, in commit order, with no lock on the write path.

-- A hold is announced as `transaction.pending`; everything else the engine creates as
-- `transaction.created`. This changes one expression of moneta_create_batch; rather than
-- repeating its 280 lines, rewrite the stored definition and insist the edit happened.
DO $$
DECLARE
  v_def text := pg_get_functiondef('moneta_create_batch'::regproc);
  v_old text := $old$SELECT p_ledger_id, 'transaction.created', x.doc$old$;
  v_new text := $new$SELECT p_ledger_id, CASE WHEN x.doc->>'status' = 'pending'
                 THEN 'transaction.pending' ELSE 'transaction.created' END, x.doc$new$;
BEGIN
  IF position(v_old IN v_def) = 0 THEN
    RAISE EXCEPTION 'moneta_create_batch does not contain the expected outbox insert';
  END IF;
  EXECUTE replace(v_def, v_old, v_new);
END $$;

-- Only the two columns the sequencer needs are decoded and sent.
CREATE PUBLICATION moneta_outbox FOR TABLE outbox (ledger_id, id) WITH (publish = 'insert');

-- Each ledger's events in commit order: sequence 1, 2, 3... with no gaps.
CREATE TABLE event_log (
  ledger_id     uuid NOT NULL,
  sequence      bigint NOT NULL,
  outbox_id     bigint NOT NULL,
  sequenced_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT event_log_pkey PRIMARY KEY (ledger_id, sequence),
  CONSTRAINT event_log_outbox_key UNIQUE (ledger_id, outbox_id)
);

-- The newest sequence per ledger: where numbering continues, and what consumers compare
-- their cursor with to find work.
CREATE TABLE event_heads (
  ledger_id  uuid PRIMARY KEY,
  sequence   bigint NOT NULL
);

-- How far each consumer (a sink, the webhook fan-out) has delivered each ledger.
CREATE TABLE event_cursors (
  consumer    text NOT NULL,
  ledger_id   uuid NOT NULL,
  sequence    bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT event_cursors_pkey PRIMARY KEY (consumer, ledger_id)
);

-- Appends outbox rows to the log in the order given (commit order), skipping rows already
-- numbered: after a crash between this commit and the slot's advance they come again.
CREATE FUNCTION moneta_sequence_events(p_ledger uuid[], p_outbox bigint[]) RETURNS integer
LANGUAGE sql AS $$
  WITH input AS (
    SELECT u.ledger_id, u.outbox_id, u.ord
      FROM unnest(p_ledger, p_outbox) WITH ORDINALITY AS u(ledger_id, outbox_id, ord)
     WHERE NOT EXISTS (SELECT 1 FROM event_log e
                        WHERE e.ledger_id = u.ledger_id AND e.outbox_id = u.outbox_id)
  ), numbered AS (
    SELECT i.ledger_id, i.outbox_id,
           coalesce(h.sequence, 0) + row_number() OVER (PARTITION BY i.ledger_id ORDER BY i.ord)
             AS sequence
      FROM input i LEFT JOIN event_heads h ON h.ledger_id = i.ledger_id
  ), ins AS (
    INSERT INTO event_log (ledger_id, sequence, outbox_id)
    SELECT ledger_id, sequence, outbox_id FROM numbered
    RETURNING ledger_id, sequence
  ), heads AS (
    INSERT INTO event_heads (ledger_id, sequence)
    SELECT ledger_id, max(sequence) FROM ins GROUP BY ledger_id
    ON CONFLICT (ledger_id) DO UPDATE SET sequence = excluded.sequence
  )
  SELECT count(*)::integer FROM ins;
$$;

-- Outbox rows written before the slot existed (a database upgraded to this revision) are
-- numbered in the only order left: (txid, id), which is gap-free below the snapshot xmin.
CREATE FUNCTION moneta_sequence_backlog() RETURNS integer LANGUAGE sql AS $$
  SELECT moneta_sequence_events(array_agg(o.ledger_id ORDER BY o.txid, o.id),
                                array_agg(o.id ORDER BY o.txid, o.id))
    FROM outbox o
   WHERE NOT EXISTS (SELECT 1 FROM event_log e
                      WHERE e.ledger_id = o.ledger_id AND e.outbox_id = o.id);
$$;

-- The envelope every consumer gets, built once here.
CREATE FUNCTION moneta_event_json(e event_log, o outbox) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object('id', o.event_id, 'type', o.type, 'ledger_id', o.ledger_id,
                            'sequence', e.sequence, 'created_at', o.created_at, 'data', o.data);
$$;

-- Webhook endpoints: the secret signs deliveries, so it is kept (shown to the tenant once).
-- During a rotation the previous secret also signs until previous_secret_expires_at.
CREATE TABLE webhook_endpoints (
  id                          uuid PRIMARY KEY DEFAULT moneta_uuid7(),
  ledger_id                   uuid NOT NULL REFERENCES ledgers (id),
  url                         text NOT NULL,
  event_types                 text[] NOT NULL,
  description                 text,
  secret                      text NOT NULL,
  previous_secret             text,
  previous_secret_expires_at  timestamptz,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  deleted_at                  timestamptz
);
CREATE INDEX webhook_endpoints_ledger_idx ON webhook_endpoints (ledger_id) WHERE deleted_at IS NULL;

-- One row per (endpoint, event): the fan-out writes it in the same transaction as it moves
-- its cursor, so each event is offered to each endpoint exactly once, then retried.
CREATE TABLE webhook_deliveries (
  id               uuid PRIMARY KEY DEFAULT moneta_uuid7(),
  endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id),
  ledger_id        uuid NOT NULL,
  event_sequence   bigint NOT NULL,
  event_id         uuid NOT NULL,
  event_type       text NOT NULL,
  status           text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'succeeded', 'dead')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- Retries stop here and the delivery is dead-lettered (a redelivery sets a new one).
  give_up_at       timestamptz NOT NULL,
  -- Claimed by a dispatcher until then; a crashed dispatcher's claim simply runs out.
  locked_until     timestamptz,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  CONSTRAINT webhook_deliveries_event_key UNIQUE (endpoint_id, ledger_id, event_sequence)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id);

-- The delivery log: every attempt, with what the receiver answered.
CREATE TABLE webhook_attempts (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id),
  attempted_at timestamptz NOT NULL DEFAULT now(),
  status_code  integer,
  error        text,
  duration_ms  integer NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

GRANT SELECT ON event_log, event_heads TO moneta_app;
GRANT SELECT, INSERT, UPDATE ON event_cursors, webhook_endpoints, webhook_deliveries TO moneta_app;
GRANT SELECT, INSERT ON webhook_attempts TO moneta_app;
