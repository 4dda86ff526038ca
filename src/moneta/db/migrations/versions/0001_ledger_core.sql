-- 0001 ledger core: tenants, accounts, balances, transactions, append-only entries, the
-- outbox, API keys and idempotency keys, plus the server-side functions that move money.
-- Every money movement is ONE call of a function below (one round trip from the API).

-- Time-ordered UUIDs (RFC 9562 v7): index-friendly ids that sort by creation time.
CREATE FUNCTION moneta_uuid7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

CREATE TABLE ledgers (
  id          uuid PRIMARY KEY DEFAULT moneta_uuid7(),
  name        text NOT NULL,
  metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Control plane, not ledger data: a key may span all ledgers (ledger_id NULL).
CREATE TABLE api_keys (
  id           uuid PRIMARY KEY DEFAULT moneta_uuid7(),
  ledger_id    uuid REFERENCES ledgers (id),
  scope        text NOT NULL CONSTRAINT api_keys_scope_check CHECK (scope IN ('read', 'write', 'admin')),
  secret_hash  bytea NOT NULL,
  name         text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);

CREATE TABLE accounts (
  ledger_id        uuid NOT NULL REFERENCES ledgers (id),
  id               uuid NOT NULL DEFAULT moneta_uuid7(),
  code             text NOT NULL,
  currency         text NOT NULL,
  normal_balance   text NOT NULL CONSTRAINT accounts_normal_balance_check
                     CHECK (normal_balance IN ('debit', 'credit')),
  -- NULL = unlimited overdraft (system accounts); 0 = may not go below zero.
  overdraft_limit  numeric(39, 0) CONSTRAINT accounts_overdraft_limit_check CHECK (overdraft_limit >= 0),
  metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_pkey PRIMARY KEY (ledger_id, id),
  CONSTRAINT accounts_code_key UNIQUE (ledger_id, code)
);
CREATE INDEX accounts_id_idx ON accounts (id);
CREATE INDEX accounts_metadata_idx ON accounts USING gin (metadata jsonb_path_ops);

-- One narrow row per account, updated in place under a row lock (HOT-friendly: no indexed
-- column changes). Sums are kept per side so no update ever needs a sign.
CREATE TABLE balances (
  ledger_id        uuid NOT NULL,
  account_id       uuid NOT NULL,
  posted_debits    numeric(39, 0) NOT NULL DEFAULT 0,
  posted_credits   numeric(39, 0) NOT NULL DEFAULT 0,
  pending_debits   numeric(39, 0) NOT NULL DEFAULT 0,
  pending_credits  numeric(39, 0) NOT NULL DEFAULT 0,
  version          bigint NOT NULL DEFAULT 0,
  CONSTRAINT balances_pkey PRIMARY KEY (ledger_id, account_id),
  CONSTRAINT balances_account_fkey FOREIGN KEY (ledger_id, account_id) REFERENCES accounts (ledger_id, id),
  CONSTRAINT balances_nonnegative_check CHECK (
    posted_debits >= 0 AND posted_credits >= 0 AND pending_debits >= 0 AND pending_credits >= 0)
) WITH (fillfactor = 70);

CREATE TABLE transactions (
  ledger_id       uuid NOT NULL REFERENCES ledgers (id),
  id              uuid NOT NULL DEFAULT moneta_uuid7(),
  status          text NOT NULL CONSTRAINT transactions_status_check
                    CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
  -- [{debit, credit, amount, posted_amount}] with resolved account ids, in request order.
  postings        jsonb NOT NULL,
  effective_at    timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  completed_at    timestamptz,
  expires_at      timestamptz,
  description     text,
  external_id     text,
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  reverses_id     uuid,
  reversed_by_id  uuid,
  CONSTRAINT transactions_pkey PRIMARY KEY (ledger_id, id),
  CONSTRAINT transactions_external_id_key UNIQUE (ledger_id, external_id),
  -- A transaction is reversed at most once.
  CONSTRAINT transactions_reverses_id_key UNIQUE (ledger_id, reverses_id)
);
CREATE INDEX transactions_id_idx ON transactions (id);
CREATE INDEX transactions_metadata_idx ON transactions USING gin (metadata jsonb_path_ops);
CREATE INDEX transactions_expiry_idx ON transactions (expires_at)
  WHERE status = 'pending' AND expires_at IS NOT NULL;

-- Append-only. No foreign key to accounts on purpose: every writer resolves and locks the
-- account's balance row first, and a FK check would take a KEY SHARE lock on hot account
-- rows from every concurrent writer (multixact churn).
CREATE TABLE entries (
  ledger_id       uuid NOT NULL,
  id              bigint GENERATED ALWAYS AS IDENTITY,
  transaction_id  uuid NOT NULL,
  account_id      uuid NOT NULL,
  posting_index   integer NOT NULL,
  direction       text NOT NULL CONSTRAINT entries_direction_check CHECK (direction IN ('debit', 'credit')),
  amount          numeric(39, 0) NOT NULL CONSTRAINT entries_amount_check CHECK (amount > 0),
  -- A pending entry reserves funds while its transaction is pending; it never moves posted.
  pending         boolean NOT NULL,
  -- The account's posted balance (in its normal direction) right after this entry, in
  -- commit order. Pending entries carry the unchanged posted balance.
  balance_after   numeric(39, 0) NOT NULL,
  effective_at    timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT entries_pkey PRIMARY KEY (ledger_id, id),
  CONSTRAINT entries_transaction_fkey FOREIGN KEY (ledger_id, transaction_id)
    REFERENCES transactions (ledger_id, id)
);
CREATE INDEX entries_account_idx ON entries (ledger_id, account_id, id);
CREATE INDEX entries_transaction_idx ON entries (ledger_id, transaction_id);
CREATE INDEX entries_as_of_idx ON entries (ledger_id, account_id, effective_at)
  INCLUDE (direction, amount) WHERE NOT pending;

CREATE FUNCTION moneta_entries_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'entries are append-only: post a reversal instead'
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries
  FOR EACH ROW EXECUTE FUNCTION moneta_entries_are_immutable();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
  FOR EACH STATEMENT EXECUTE FUNCTION moneta_entries_are_immutable();

-- Transactional outbox: written in the same transaction as the change it describes.
-- txid lets readers stay below the oldest running transaction so that no row can appear
-- later behind a cursor (see events/repository.py).
CREATE TABLE outbox (
  ledger_id   uuid NOT NULL,
  id          bigint GENERATED ALWAYS AS IDENTITY,
  txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  event_id    uuid NOT NULL DEFAULT moneta_uuid7(),
  type        text NOT NULL,
  data        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT outbox_pkey PRIMARY KEY (ledger_id, id)
);
CREATE INDEX outbox_order_idx ON outbox (ledger_id, txid, id);

-- Scoped per API key; written in the same transaction as the effect it guards.
CREATE TABLE idempotency_keys (
  api_key_id   uuid NOT NULL,
  key          text NOT NULL,
  fingerprint  bytea NOT NULL,
  status_code  integer,
  response     bytea,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT idempotency_keys_pkey PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- ---------------------------------------------------------------------------------------
-- Representations: the API's JSON is built here, once, for responses and events alike.

CREATE FUNCTION moneta_posted(normal text, debits numeric, credits numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN normal = 'credit' THEN credits - debits ELSE debits - credits END
$$;

-- available = posted - pending outflows (pending inflows do not count).
CREATE FUNCTION moneta_available(
  normal text, posted_debits numeric, posted_credits numeric,
  pending_debits numeric, pending_credits numeric
) RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT moneta_posted(normal, posted_debits, posted_credits)
       - CASE WHEN normal = 'credit' THEN pending_debits ELSE pending_credits END
$$;

CREATE FUNCTION moneta_account_json(a accounts, b balances) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT jsonb_build_object(
    'id', a.id, 'ledger_id', a.ledger_id, 'code', a.code, 'currency', a.currency,
    'normal_balance', a.normal_balance, 'overdraft_limit', a.overdraft_limit,
    'metadata', a.metadata, 'created_at', a.created_at,
    'balance', jsonb_build_object(
      'currency', a.currency,
      'posted', moneta_posted(a.normal_balance, b.posted_debits, b.posted_credits),
      'available', moneta_available(a.normal_balance, b.posted_debits, b.posted_credits,
                                  b.pending_debits, b.pending_credits),
      'pending_debits', b.pending_debits, 'pending_credits', b.pending_credits,
      'posted_debits', b.posted_debits, 'posted_credits', b.posted_credits,
      'version', b.version))
$$;

CREATE FUNCTION moneta_transaction_json(t transactions) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT jsonb_build_object(
    'id', t.id, 'ledger_id', t.ledger_id, 'status', t.status, 'postings', t.postings,
    'effective_at', t.effective_at, 'created_at', t.created_at,
    'completed_at', t.completed_at, 'expires_at', t.expires_at,
    'description', t.description, 'external_id', t.external_id, 'metadata', t.metadata,
    'reverses_id', t.reverses_id, 'reversed_by_id', t.reversed_by_id)
$$;

CREATE FUNCTION moneta_fail(code text, detail text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- SQLSTATE class MN: a Moneta business-rule failure; the message is its stable code.
  RAISE EXCEPTION USING ERRCODE = 'MN001', MESSAGE = code, DETAIL = detail;
END $$;

-- A posting names an account by id or by code (codes are never UUID-shaped).
CREATE FUNCTION moneta_resolve_account(p_ledger_id uuid, p_ref text) RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN p_ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      THEN (SELECT id FROM accounts WHERE ledger_id = p_ledger_id AND id = p_ref::uuid)
    ELSE (SELECT id FROM accounts WHERE ledger_id = p_ledger_id AND code = p_ref)
  END
$$;

-- ---------------------------------------------------------------------------------------
-- Money movement.

-- Applies one transaction's postings to balances and appends its entries. posted[i] >= 0
-- moves into posted; pending[i] > 0 reserves, < 0 releases. Balance rows are locked in
-- account-id order (no deadlocks) and deltas are aggregated per account, so one account
-- touched by several postings is updated once. Any account with a limit that would end
-- below -limit while losing availability fails the whole transaction.
CREATE FUNCTION moneta_apply_postings(
  p_ledger_id uuid, p_transaction_id uuid, p_effective_at timestamptz,
  p_debit_ids uuid[], p_credit_ids uuid[], p_posted numeric[], p_pending numeric[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_short record;
BEGIN
  PERFORM 1 FROM balances
   WHERE ledger_id = p_ledger_id AND account_id = ANY (p_debit_ids || p_credit_ids)
   ORDER BY account_id FOR UPDATE;

  WITH legs AS (
    SELECT m.i, x.k, x.account_id, x.direction, x.amount, x.pending
      FROM unnest(p_debit_ids, p_credit_ids, p_posted, p_pending)
             WITH ORDINALITY AS m(d, c, posted, pending, i)
     CROSS JOIN LATERAL (VALUES
       (0, m.d, 'debit', m.posted, false), (1, m.c, 'credit', m.posted, false),
       (2, m.d, 'debit', m.pending, true), (3, m.c, 'credit', m.pending, true)
     ) AS x(k, account_id, direction, amount, pending)
     WHERE x.amount <> 0
  ), delta AS (
    SELECT account_id,
           coalesce(sum(amount) FILTER (WHERE direction = 'debit' AND NOT pending), 0) AS pd,
           coalesce(sum(amount) FILTER (WHERE direction = 'credit' AND NOT pending), 0) AS pc,
           coalesce(sum(amount) FILTER (WHERE direction = 'debit' AND pending), 0) AS qd,
           coalesce(sum(amount) FILTER (WHERE direction = 'credit' AND pending), 0) AS qc
      FROM legs GROUP BY account_id
  ), updated AS (
    UPDATE balances b
       SET posted_debits = b.posted_debits + delta.pd,
           posted_credits = b.posted_credits + delta.pc,
           pending_debits = b.pending_debits + delta.qd,
           pending_credits = b.pending_credits + delta.qc,
           version = b.version + 1
      FROM delta
     WHERE b.ledger_id = p_ledger_id AND b.account_id = delta.account_id
    RETURNING b.account_id, b.posted_debits, b.posted_credits, b.pending_debits,
              b.pending_credits, delta.pd, delta.pc, delta.qd, delta.qc
  ), acct AS (
    SELECT u.*, a.normal_balance, a.overdraft_limit,
           moneta_posted(a.normal_balance, u.posted_debits - u.pd, u.posted_credits - u.pc)
             AS posted_before
      FROM updated u JOIN accounts a ON a.ledger_id = p_ledger_id AND a.id = u.account_id
  ), written AS (
    INSERT INTO entries (ledger_id, transaction_id, account_id, posting_index, direction,
                         amount, pending, balance_after, effective_at)
    SELECT p_ledger_id, p_transaction_id, l.account_id, l.i - 1, l.direction, l.amount,
           l.pending,
           acct.posted_before + sum(CASE WHEN l.pending THEN 0
                                         WHEN l.direction = acct.normal_balance THEN l.amount
                                         ELSE -l.amount END)
             OVER (PARTITION BY l.account_id ORDER BY l.i, l.k ROWS UNBOUNDED PRECEDING),
           p_effective_at
      FROM legs l JOIN acct ON acct.account_id = l.account_id
     WHERE l.amount > 0
     ORDER BY l.i, l.k
    RETURNING 1
  )
  SELECT acct.account_id,
         moneta_available(normal_balance, posted_debits, posted_credits,
                          pending_debits, pending_credits) AS available,
         overdraft_limit
    INTO v_short
    FROM acct
   WHERE overdraft_limit IS NOT NULL
     AND moneta_available(normal_balance, posted_debits, posted_credits,
                          pending_debits, pending_credits) < -overdraft_limit
     AND moneta_available(normal_balance, pd, pc, qd, qc) < 0
   ORDER BY acct.account_id
   LIMIT 1;

  IF FOUND THEN
    PERFORM moneta_fail('insufficient_funds', format(
      'account %s would have available balance %s, below its limit of -%s',
      v_short.account_id, v_short.available, v_short.overdraft_limit));
  END IF;
END $$;

CREATE FUNCTION moneta_create_transaction(
  p_ledger_id uuid, p_debits text[], p_credits text[], p_amounts numeric[],
  p_pending boolean, p_expires_at timestamptz, p_effective_at timestamptz,
  p_description text, p_external_id text, p_metadata jsonb, p_reverses_id uuid
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_n integer := cardinality(p_amounts);
  v_refs text[];
  v_ids uuid[];
  v_missing integer;
  v_debit_ids uuid[];
  v_credit_ids uuid[];
  v_bad record;
  v_zero numeric[];
  v_tx transactions;
  v_json jsonb;
BEGIN
  -- The API validated all of this; the ledger asserts it again (it is the last line).
  IF v_n IS NULL OR v_n = 0 OR cardinality(p_debits) <> v_n OR cardinality(p_credits) <> v_n
     OR EXISTS (SELECT 1 FROM unnest(p_amounts) a WHERE a IS NULL OR a <= 0) THEN
    PERFORM moneta_fail('invalid_postings', 'postings need a debit, a credit and a positive amount');
  END IF;

  SELECT array_agg(r.ref), array_agg(moneta_resolve_account(p_ledger_id, r.ref))
    INTO v_refs, v_ids
    FROM (SELECT DISTINCT unnest(p_debits || p_credits) AS ref) r;
  v_missing := array_position(v_ids, NULL);
  IF v_missing IS NOT NULL THEN
    PERFORM moneta_fail('account_not_found',
      format('no account %s in ledger %s', v_refs[v_missing], p_ledger_id));
  END IF;

  SELECT array_agg(v_ids[array_position(v_refs, p.d)] ORDER BY p.i),
         array_agg(v_ids[array_position(v_refs, p.c)] ORDER BY p.i)
    INTO v_debit_ids, v_credit_ids
    FROM unnest(p_debits, p_credits) WITH ORDINALITY AS p(d, c, i);

  SELECT p.i, p.d, p.c, da.currency AS debit_currency, ca.currency AS credit_currency
    INTO v_bad
    FROM unnest(v_debit_ids, v_credit_ids) WITH ORDINALITY AS p(d, c, i)
    JOIN accounts da ON da.ledger_id = p_ledger_id AND da.id = p.d
    JOIN accounts ca ON ca.ledger_id = p_ledger_id AND ca.id = p.c
   WHERE da.currency <> ca.currency OR p.d = p.c
   ORDER BY p.i LIMIT 1;
  IF FOUND AND v_bad.d = v_bad.c THEN
    PERFORM moneta_fail('same_account',
      format('posting %s debits and credits the same account', v_bad.i - 1));
  ELSIF FOUND THEN
    PERFORM moneta_fail('currency_mismatch', format('posting %s moves %s into a %s account',
      v_bad.i - 1, v_bad.debit_currency, v_bad.credit_currency));
  END IF;

  INSERT INTO transactions (ledger_id, status, postings, effective_at, completed_at,
                            expires_at, description, external_id, metadata, reverses_id)
  SELECT p_ledger_id, CASE WHEN p_pending THEN 'pending' ELSE 'posted' END,
         jsonb_agg(jsonb_build_object('debit', p.d, 'credit', p.c, 'amount', p.a,
                   'posted_amount', CASE WHEN p_pending THEN NULL ELSE p.a END) ORDER BY p.i),
         coalesce(p_effective_at, now()), CASE WHEN p_pending THEN NULL ELSE now() END,
         p_expires_at, p_description, p_external_id, coalesce(p_metadata, '{}'::jsonb),
         p_reverses_id
    FROM unnest(v_debit_ids, v_credit_ids, p_amounts) WITH ORDINALITY AS p(d, c, a, i)
  ON CONFLICT (ledger_id, external_id) DO NOTHING
  RETURNING * INTO v_tx;
  IF NOT FOUND THEN
    PERFORM moneta_fail('duplicate_external_id',
      format('external_id %s is already used in this ledger', p_external_id));
  END IF;

  v_zero := array_fill(0::numeric, ARRAY[v_n]);
  IF p_pending THEN
    PERFORM moneta_apply_postings(p_ledger_id, v_tx.id, v_tx.effective_at,
                                  v_debit_ids, v_credit_ids, v_zero, p_amounts);
  ELSE
    PERFORM moneta_apply_postings(p_ledger_id, v_tx.id, v_tx.effective_at,
                                  v_debit_ids, v_credit_ids, p_amounts, v_zero);
  END IF;

  v_json := moneta_transaction_json(v_tx);
  INSERT INTO outbox (ledger_id, type, data) VALUES (p_ledger_id, 'transaction.created', v_json);
  RETURN v_json;
END $$;

-- Locks a transaction row and checks it is still pending.
CREATE FUNCTION moneta_lock_pending(p_ledger_id uuid, p_id uuid, p_refuse_expired boolean)
RETURNS transactions LANGUAGE plpgsql AS $$
DECLARE
  v_tx transactions;
BEGIN
  SELECT * INTO v_tx FROM transactions WHERE ledger_id = p_ledger_id AND id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM moneta_fail('not_found', format('no transaction %s', p_id));
  END IF;
  IF v_tx.status <> 'pending' THEN
    PERFORM moneta_fail('transaction_not_pending', format('transaction is %s', v_tx.status));
  END IF;
  IF p_refuse_expired AND v_tx.expires_at <= now() THEN
    PERFORM moneta_fail('transaction_not_pending',
      format('transaction expired at %s', v_tx.expires_at));
  END IF;
  RETURN v_tx;
END $$;

-- Settles a pending transaction: all of it (p_amounts NULL) or less, per posting; the
-- rest of the reservation is released.
CREATE FUNCTION moneta_post_transaction(p_ledger_id uuid, p_id uuid, p_amounts numeric[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_tx transactions;
  v_debit_ids uuid[];
  v_credit_ids uuid[];
  v_amounts numeric[];
  v_release numeric[];
  v_posted numeric[];
  v_json jsonb;
BEGIN
  v_tx := moneta_lock_pending(p_ledger_id, p_id, true);
  SELECT array_agg((p->>'debit')::uuid ORDER BY i), array_agg((p->>'credit')::uuid ORDER BY i),
         array_agg((p->>'amount')::numeric ORDER BY i), array_agg(-(p->>'amount')::numeric ORDER BY i)
    INTO v_debit_ids, v_credit_ids, v_amounts, v_release
    FROM jsonb_array_elements(v_tx.postings) WITH ORDINALITY AS x(p, i);
  v_posted := coalesce(p_amounts, v_amounts);
  IF cardinality(v_posted) <> cardinality(v_amounts)
     OR EXISTS (SELECT 1 FROM unnest(v_posted, v_amounts) AS x(p, a)
                 WHERE p IS NULL OR p < 0 OR p > a)
     OR NOT EXISTS (SELECT 1 FROM unnest(v_posted) AS p WHERE p > 0) THEN
    PERFORM moneta_fail('invalid_post_amount', format(
      'give one amount per posting (%s), each at most the pending amount, not all zero',
      cardinality(v_amounts)));
  END IF;

  PERFORM moneta_apply_postings(p_ledger_id, p_id, now(), v_debit_ids, v_credit_ids,
                                v_posted, v_release);
  UPDATE transactions SET status = 'posted', completed_at = now(),
         postings = (SELECT jsonb_agg(p || jsonb_build_object('posted_amount', v_posted[i])
                                      ORDER BY i)
                       FROM jsonb_array_elements(postings) WITH ORDINALITY AS x(p, i))
   WHERE ledger_id = p_ledger_id AND id = p_id
  RETURNING * INTO v_tx;
  v_json := moneta_transaction_json(v_tx);
  INSERT INTO outbox (ledger_id, type, data) VALUES (p_ledger_id, 'transaction.posted', v_json);
  RETURN v_json;
END $$;

-- Releases a pending transaction's reservation: status 'voided' or 'expired'.
CREATE FUNCTION moneta_release_transaction(p_ledger_id uuid, p_id uuid, p_status text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_tx transactions;
  v_debit_ids uuid[];
  v_credit_ids uuid[];
  v_release numeric[];
  v_json jsonb;
BEGIN
  v_tx := moneta_lock_pending(p_ledger_id, p_id, false);
  SELECT array_agg((p->>'debit')::uuid ORDER BY i), array_agg((p->>'credit')::uuid ORDER BY i),
         array_agg(-(p->>'amount')::numeric ORDER BY i)
    INTO v_debit_ids, v_credit_ids, v_release
    FROM jsonb_array_elements(v_tx.postings) WITH ORDINALITY AS x(p, i);
  PERFORM moneta_apply_postings(p_ledger_id, p_id, now(), v_debit_ids, v_credit_ids,
                                array_fill(0::numeric, ARRAY[cardinality(v_release)]), v_release);
  UPDATE transactions SET status = p_status, completed_at = now()
   WHERE ledger_id = p_ledger_id AND id = p_id
  RETURNING * INTO v_tx;
  v_json := moneta_transaction_json(v_tx);
  INSERT INTO outbox (ledger_id, type, data)
  VALUES (p_ledger_id, 'transaction.' || p_status, v_json);
  RETURN v_json;
END $$;

-- Undoes a posted transaction with a new posted one (debits and credits swapped, posted
-- amounts). Both are linked; a transaction is reversed at most once.
CREATE FUNCTION moneta_reverse_transaction(
  p_ledger_id uuid, p_id uuid, p_description text, p_external_id text, p_metadata jsonb
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_tx transactions;
  v_debits text[];
  v_credits text[];
  v_amounts numeric[];
  v_json jsonb;
BEGIN
  SELECT * INTO v_tx FROM transactions WHERE ledger_id = p_ledger_id AND id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM moneta_fail('not_found', format('no transaction %s', p_id));
  END IF;
  IF v_tx.status <> 'posted' THEN
    PERFORM moneta_fail('transaction_not_posted', format('transaction is %s', v_tx.status));
  END IF;
  IF v_tx.reversed_by_id IS NOT NULL THEN
    PERFORM moneta_fail('transaction_already_reversed',
      format('transaction was reversed by %s', v_tx.reversed_by_id));
  END IF;
  IF v_tx.reverses_id IS NOT NULL THEN
    PERFORM moneta_fail('transaction_is_reversal', 'a reversal cannot itself be reversed');
  END IF;

  SELECT array_agg(p->>'credit' ORDER BY i), array_agg(p->>'debit' ORDER BY i),
         array_agg((p->>'posted_amount')::numeric ORDER BY i)
    INTO v_debits, v_credits, v_amounts
    FROM jsonb_array_elements(v_tx.postings) WITH ORDINALITY AS x(p, i)
   WHERE (p->>'posted_amount')::numeric > 0;

  v_json := moneta_create_transaction(p_ledger_id, v_debits, v_credits, v_amounts, false,
    NULL, now(), coalesce(p_description, format('Reversal of %s', p_id)), p_external_id,
    p_metadata, p_id);
  UPDATE transactions SET reversed_by_id = (v_json->>'id')::uuid
   WHERE ledger_id = p_ledger_id AND id = p_id
  RETURNING * INTO v_tx;
  INSERT INTO outbox (ledger_id, type, data)
  VALUES (p_ledger_id, 'transaction.reversed', moneta_transaction_json(v_tx));
  RETURN v_json;
END $$;

-- Expires due pending transactions; several workers may run it at once (SKIP LOCKED).
CREATE FUNCTION moneta_expire_due(p_limit integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_count integer := 0;
BEGIN
  FOR r IN
    SELECT ledger_id, id FROM transactions
     WHERE status = 'pending' AND expires_at <= now()
     ORDER BY expires_at LIMIT p_limit
       FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM moneta_release_transaction(r.ledger_id, r.id, 'expired');
    v_count := v_count + 1;
  END LOOP;
  RETURN v_count;
END $$;

-- ---------------------------------------------------------------------------------------
-- The service's role: it may read and append entries, never change or delete them.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'moneta_app') THEN
    CREATE ROLE moneta_app NOLOGIN;
  END IF;
END $$;
GRANT moneta_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO moneta_app;
GRANT SELECT, INSERT, UPDATE ON ledgers, accounts, balances, transactions, api_keys TO moneta_app;
GRANT SELECT, INSERT ON entries, outbox TO moneta_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO moneta_app;
