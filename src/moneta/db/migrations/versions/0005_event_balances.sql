-- Balances inside the transaction events (instead of a balance.changed event per account,
-- which would triple outbox writes on the hot path). Built when an event is read, from the
-- entries the same database transaction wrote (same ledger, transaction and now()): they
-- are immutable, so every redelivery carries the same figures. `posted_after` is the
-- entry's balance_after: null for limit-free (hot) accounts, as in the entries API.
CREATE OR REPLACE FUNCTION moneta_event_json(e event_log, o outbox) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('id', o.event_id, 'type', o.type, 'ledger_id', o.ledger_id,
                            'sequence', e.sequence, 'created_at', o.created_at, 'data', o.data)
         || CASE WHEN o.type LIKE 'transaction.%' THEN jsonb_build_object('balances', coalesce(
              (SELECT jsonb_agg(jsonb_build_object('account_id', b.account_id,
                                                   'posted_after', b.balance_after)
                                ORDER BY b.account_id)
                 FROM (SELECT DISTINCT ON (n.account_id) n.account_id, n.balance_after
                         FROM entries n
                        WHERE n.ledger_id = o.ledger_id
                          AND n.transaction_id = (o.data->>'id')::uuid
                          AND n.created_at = o.created_at
                        ORDER BY n.account_id, n.id DESC) b),
              '[]'::jsonb))
            ELSE '{}'::jsonb END;
$$;
