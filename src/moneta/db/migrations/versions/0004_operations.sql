-- Operations: per-key rate limits (enforced in Redis, configured here) and the scheduled
-- invariant check's findings.

-- Null: the service-wide default (MONETA_RATE_LIMIT_PER_S / _BURST).
ALTER TABLE api_keys
  ADD COLUMN rate_limit_per_s numeric CHECK (rate_limit_per_s > 0),
  ADD COLUMN rate_limit_burst integer CHECK (rate_limit_burst > 0);

-- Everything the ledger promises that can be checked after the fact, in one pass. Each row
-- is one violation; an empty result is a healthy ledger. Entries are append-only, so a
-- violation here means a bug or a hand edit: it is logged loudly and exported as a metric.
CREATE FUNCTION moneta_check_invariants()
RETURNS TABLE (ledger_id uuid, kind text, detail text) LANGUAGE sql STABLE AS $$
  -- 1. Every transaction's entries balance, posted and pending alike.
  SELECT e.ledger_id, 'unbalanced_transaction', e.transaction_id::text
    FROM entries e
   GROUP BY e.ledger_id, e.transaction_id, e.pending
  HAVING sum(e.amount) FILTER (WHERE e.direction = 'debit')
         IS DISTINCT FROM sum(e.amount) FILTER (WHERE e.direction = 'credit')
  UNION ALL
  -- 2. Per ledger and currency, credit-normal balances sum to debit-normal ones, i.e.
  --    all posted credits equal all posted debits.
  SELECT a.ledger_id, 'currency_out_of_balance', a.currency
    FROM accounts a JOIN account_balances b ON b.ledger_id = a.ledger_id AND b.account_id = a.id
   GROUP BY a.ledger_id, a.currency
  HAVING sum(b.posted_credits) <> sum(b.posted_debits)
  UNION ALL
  -- 3. Every balance equals the sum of its account's entries.
  SELECT b.ledger_id, 'balance_differs_from_entries', b.account_id::text
    FROM account_balances b
    LEFT JOIN (
      SELECT e.ledger_id, e.account_id,
             sum(e.amount) FILTER (WHERE NOT e.pending AND e.direction = 'debit') AS pd,
             sum(e.amount) FILTER (WHERE NOT e.pending AND e.direction = 'credit') AS pc,
             sum(e.amount) FILTER (WHERE e.pending AND e.direction = 'debit'
                                   AND t.status = 'pending') AS qd,
             sum(e.amount) FILTER (WHERE e.pending AND e.direction = 'credit'
                                   AND t.status = 'pending') AS qc
        FROM entries e JOIN transactions t
          ON t.ledger_id = e.ledger_id AND t.id = e.transaction_id
       GROUP BY e.ledger_id, e.account_id
    ) s ON s.ledger_id = b.ledger_id AND s.account_id = b.account_id
   WHERE (b.posted_debits, b.posted_credits, b.pending_debits, b.pending_credits)
         IS DISTINCT FROM (coalesce(s.pd, 0), coalesce(s.pc, 0), coalesce(s.qd, 0),
                           coalesce(s.qc, 0))
  UNION ALL
  -- 4. No account with a limit is below it.
  SELECT a.ledger_id, 'below_overdraft_limit', a.id::text
    FROM accounts a JOIN account_balances b ON b.ledger_id = a.ledger_id AND b.account_id = a.id
   WHERE a.overdraft_limit IS NOT NULL
     AND moneta_available(a.normal_balance, b.posted_debits, b.posted_credits,
                          b.pending_debits, b.pending_credits) < -a.overdraft_limit;
$$;

-- One row per run of the check (the worker's), so every api replica exports the latest.
CREATE TABLE invariant_checks (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  checked_at   timestamptz NOT NULL DEFAULT now(),
  duration_ms  integer NOT NULL,
  violations   integer NOT NULL,
  sample       jsonb NOT NULL DEFAULT '[]'  -- the first violations, for the operator
);

GRANT SELECT, INSERT ON invariant_checks TO moneta_app;
GRANT EXECUTE ON FUNCTION moneta_check_invariants() TO moneta_app;
