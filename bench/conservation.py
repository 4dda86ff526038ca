"""The end-of-run check that no money was created, lost or moved twice, in SQL:

1. per ledger and currency, credit-normal balances sum to debit-normal balances;
2. every account's balances equal the sums of its entries (posted_* from non-pending
   entries; pending_* from pending entries of transactions that are still pending);
3. every transaction balances (per currency and per pending/posted side, debits equal
   credits), every entry has its transaction and every transaction has entries;
4. no account with an overdraft limit is below it.

A balance is the `balances` row plus, if the schema has a `balance_deltas` table
(unfolded increments for accounts without a limit), the sum of that account's rows there.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from moneta.db.database import asyncpg_dsn

SAMPLE = 10

_BALANCES_ONLY = """
  SELECT ledger_id, account_id, posted_debits AS pd, posted_credits AS pc,
         pending_debits AS qd, pending_credits AS qc
    FROM balances WHERE ($1::uuid IS NULL OR ledger_id = $1)
"""

_WITH_DELTAS = """
  SELECT ledger_id, account_id, sum(pd) AS pd, sum(pc) AS pc, sum(qd) AS qd, sum(qc) AS qc
    FROM (SELECT ledger_id, account_id, posted_debits AS pd, posted_credits AS pc,
                 pending_debits AS qd, pending_credits AS qc
            FROM balances WHERE ($1::uuid IS NULL OR ledger_id = $1)
          UNION ALL
          SELECT ledger_id, account_id, posted_debits, posted_credits,
                 pending_debits, pending_credits
            FROM balance_deltas WHERE ($1::uuid IS NULL OR ledger_id = $1)) s
   GROUP BY ledger_id, account_id
"""

_PER_CURRENCY = """
WITH eff AS ({effective})
SELECT a.ledger_id::text AS ledger_id, a.currency,
       sum(CASE WHEN a.normal_balance = 'credit' THEN eff.pc - eff.pd ELSE 0 END) AS credit_normal,
       sum(CASE WHEN a.normal_balance = 'debit' THEN eff.pd - eff.pc ELSE 0 END) AS debit_normal
  FROM accounts a JOIN eff ON eff.ledger_id = a.ledger_id AND eff.account_id = a.id
 GROUP BY a.ledger_id, a.currency ORDER BY 1, 2
"""

_MISMATCHED = """
WITH eff AS ({effective}),
sums AS (
  SELECT e.ledger_id, e.account_id,
         coalesce(sum(e.amount) FILTER (WHERE NOT e.pending AND e.direction = 'debit'), 0) AS pd,
         coalesce(sum(e.amount) FILTER (WHERE NOT e.pending AND e.direction = 'credit'), 0) AS pc,
         coalesce(sum(e.amount) FILTER (
           WHERE e.pending AND e.direction = 'debit' AND t.status = 'pending'), 0) AS qd,
         coalesce(sum(e.amount) FILTER (
           WHERE e.pending AND e.direction = 'credit' AND t.status = 'pending'), 0) AS qc
    FROM entries e
    LEFT JOIN transactions t ON t.ledger_id = e.ledger_id AND t.id = e.transaction_id
   WHERE ($1::uuid IS NULL OR e.ledger_id = $1)
   GROUP BY e.ledger_id, e.account_id
), bad AS (
  SELECT coalesce(eff.account_id, sums.account_id)::text AS account_id
    FROM eff FULL JOIN sums ON sums.ledger_id = eff.ledger_id
                           AND sums.account_id = eff.account_id
   WHERE (coalesce(eff.pd, 0), coalesce(eff.pc, 0), coalesce(eff.qd, 0), coalesce(eff.qc, 0))
         IS DISTINCT FROM
         (coalesce(sums.pd, 0), coalesce(sums.pc, 0), coalesce(sums.qd, 0), coalesce(sums.qc, 0))
)
SELECT count(*) AS n, (array_agg(account_id))[1:{sample}] AS sample FROM bad
"""

_UNBALANCED = """
WITH bad AS (
  SELECT e.transaction_id::text AS transaction_id
    FROM entries e JOIN accounts a ON a.ledger_id = e.ledger_id AND a.id = e.account_id
   WHERE ($1::uuid IS NULL OR e.ledger_id = $1)
   GROUP BY e.ledger_id, e.transaction_id, e.pending, a.currency
  HAVING sum(e.amount) FILTER (WHERE e.direction = 'debit')
         IS DISTINCT FROM sum(e.amount) FILTER (WHERE e.direction = 'credit')
)
SELECT count(DISTINCT transaction_id) AS n, (array_agg(transaction_id))[1:{sample}] AS sample
  FROM bad
"""

# Entries whose transaction row is missing, and transactions without entries (there is no
# foreign key between them: the ledger's functions write both in one statement).
_UNLINKED = """
WITH bad AS (
  SELECT 'entry ' || e.id AS what FROM entries e
   WHERE ($1::uuid IS NULL OR e.ledger_id = $1)
     AND NOT EXISTS (SELECT 1 FROM transactions t
                      WHERE t.ledger_id = e.ledger_id AND t.id = e.transaction_id)
  UNION ALL
  SELECT 'transaction ' || t.id FROM transactions t
   WHERE ($1::uuid IS NULL OR t.ledger_id = $1)
     AND NOT EXISTS (SELECT 1 FROM entries e
                      WHERE e.ledger_id = t.ledger_id AND e.transaction_id = t.id)
)
SELECT count(*) AS n, (array_agg(what))[1:{sample}] AS sample FROM bad
"""

_BELOW_LIMIT = """
WITH eff AS ({effective}),
bad AS (
  SELECT a.id::text AS account_id FROM accounts a
    JOIN eff ON eff.ledger_id = a.ledger_id AND eff.account_id = a.id
   WHERE a.overdraft_limit IS NOT NULL
     AND moneta_available(a.normal_balance, eff.pd, eff.pc, eff.qd, eff.qc) < -a.overdraft_limit
)
SELECT count(*) AS n, (array_agg(account_id))[1:{sample}] AS sample FROM bad
"""

_COUNTS = """
SELECT (SELECT count(*) FROM accounts WHERE ($1::uuid IS NULL OR ledger_id = $1)) AS accounts,
       (SELECT count(*) FROM transactions
         WHERE ($1::uuid IS NULL OR ledger_id = $1)) AS transactions,
       (SELECT count(*) FROM entries WHERE ($1::uuid IS NULL OR ledger_id = $1)) AS entries
"""


async def has_balance_deltas(conn: asyncpg.Connection[asyncpg.Record]) -> bool:
    found = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM information_schema.tables
                           WHERE table_schema = current_schema()
                             AND table_name = 'balance_deltas')"""
    )
    return bool(found)


async def check(database_url: str, ledger_id: str | None = None) -> dict[str, Any]:
    """Run every check over one ledger (or all with None); `ok` is False if any failed."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deltas = await has_balance_deltas(conn)
        effective = _WITH_DELTAS if deltas else _BALANCES_ONLY
        ledger = ledger_id
        currencies = []
        for cur in await conn.fetch(_PER_CURRENCY.format(effective=effective), ledger):
            credit_normal, debit_normal = cur["credit_normal"], cur["debit_normal"]
            currencies.append(
                {
                    "ledger_id": cur["ledger_id"],
                    "currency": cur["currency"],
                    "credit_normal": int(credit_normal),
                    "debit_normal": int(debit_normal),
                    "ok": credit_normal == debit_normal,
                }
            )
        checks = {}
        for name, sql in (
            ("balances_match_entries", _MISMATCHED),
            ("transactions_balance", _UNBALANCED),
            ("entries_match_transactions", _UNLINKED),
            ("within_overdraft_limits", _BELOW_LIMIT),
        ):
            row = await conn.fetchrow(sql.format(effective=effective, sample=SAMPLE), ledger)
            assert row is not None
            checks[name] = {"ok": row["n"] == 0, "failures": row["n"], "sample": row["sample"]}
        counts = await conn.fetchrow(_COUNTS, ledger)
        assert counts is not None
    finally:
        await conn.close()
    ok = all(c["ok"] for c in currencies) and all(c["ok"] for c in checks.values())
    return {
        "ok": ok,
        "scope": f"ledger {ledger_id}" if ledger_id else "all ledgers",
        "balance_deltas_table": deltas,
        "conservation_per_currency": currencies,
        **checks,
        "counts": dict(counts),
    }
