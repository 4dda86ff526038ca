"""The raw-SQL ceiling, measured in the same run on the same PostgreSQL: what the database
does per second when a transfer is written by hand as ONE statement, with nothing in front
of it (no HTTP, no Python service). Moneta's numbers are read as a fraction of it.

- single: one transfer per statement. A data-modifying CTE locks the two balance rows in
  account-id order (FOR UPDATE), checks the overdraft limit, inserts the transactions row,
  updates both balances (the limit check again in the UPDATE's WHERE), appends two entries
  with balance_after and one outbox row carrying the transaction's JSON: the same rows
  Moneta writes, minus its resolution of references and validation.
- batch: 100 transfers per statement, set-based over unnest() arrays: deltas aggregated per
  account, one UPDATE per touched balance row, balance_after by a running window sum.
  All-or-nothing per statement (a failed limit check writes nothing).
- pgbench (optional): the single statement driven by pgbench itself (C client, prepared,
  -c 8 -j 2), wallets looked up by code inside the statement.

Both run through asyncpg at the benchmark's concurrency, connected as the URL's user.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from bench.setup import WALLET_PREFIX, BenchLedger
from bench.stats import CpuMeter, Measurement, Progress
from moneta.db.database import asyncpg_dsn
from moneta.db.embedded import bin_dir

BATCH_SIZE = 100
MAX_AMOUNT = 100
PGBENCH_CLIENTS = 8
PGBENCH_THREADS = 2

# {ledger} {debit} {credit} {amount} are SQL expressions: $n parameters for asyncpg,
# pgbench variables and lookups for pgbench.
SINGLE_TEMPLATE = """
WITH p AS MATERIALIZED (
  SELECT {ledger}::uuid AS l, {debit}::uuid AS d, {credit}::uuid AS c, {amount}::numeric AS a
), lk AS MATERIALIZED (
  SELECT b.account_id, b.posted_debits, b.posted_credits, b.pending_debits, b.pending_credits,
         ac.normal_balance, ac.overdraft_limit
    FROM balances b JOIN accounts ac ON ac.ledger_id = b.ledger_id AND ac.id = b.account_id
   WHERE b.ledger_id = (SELECT l FROM p)
     AND b.account_id = ANY (ARRAY[(SELECT d FROM p), (SELECT c FROM p)])
   ORDER BY b.account_id
     FOR UPDATE OF b
), ok AS MATERIALIZED (
  SELECT 1 FROM p, lk
   WHERE lk.account_id = p.d AND (SELECT count(*) FROM lk) = 2
     AND (lk.overdraft_limit IS NULL
          OR moneta_available(lk.normal_balance, lk.posted_debits + p.a, lk.posted_credits,
                              lk.pending_debits, lk.pending_credits) >= -lk.overdraft_limit)
), tx AS (
  INSERT INTO transactions (ledger_id, status, postings, effective_at, completed_at)
  SELECT p.l, 'posted', jsonb_build_array(jsonb_build_object(
           'debit', p.d, 'credit', p.c, 'amount', p.a, 'posted_amount', p.a)), now(), now()
    FROM p, ok
  RETURNING *
), deb AS (
  UPDATE balances b SET posted_debits = b.posted_debits + p.a, version = b.version + 1
    FROM p, tx, lk
   WHERE b.ledger_id = p.l AND b.account_id = p.d AND lk.account_id = p.d
     AND (lk.overdraft_limit IS NULL
          OR moneta_available(lk.normal_balance, b.posted_debits + p.a, b.posted_credits,
                              b.pending_debits, b.pending_credits) >= -lk.overdraft_limit)
  RETURNING b.account_id, moneta_posted(lk.normal_balance, b.posted_debits, b.posted_credits)
            AS balance_after
), cre AS (
  UPDATE balances b SET posted_credits = b.posted_credits + p.a, version = b.version + 1
    FROM p, tx, lk
   WHERE b.ledger_id = p.l AND b.account_id = p.c AND lk.account_id = p.c
  RETURNING b.account_id, moneta_posted(lk.normal_balance, b.posted_debits, b.posted_credits)
            AS balance_after
), ent AS (
  INSERT INTO entries (ledger_id, transaction_id, account_id, posting_index, direction, amount,
                       pending, balance_after, effective_at)
  SELECT p.l, tx.id, deb.account_id, 0, 'debit', p.a, false, deb.balance_after, tx.effective_at
    FROM p, tx, deb
  UNION ALL
  SELECT p.l, tx.id, cre.account_id, 0, 'credit', p.a, false, cre.balance_after, tx.effective_at
    FROM p, tx, cre
), ob AS (
  INSERT INTO outbox (ledger_id, type, data)
  SELECT p.l, 'transaction.created', moneta_transaction_json(ROW(tx.*)::transactions)
    FROM p, tx
)
SELECT count(*) FROM tx
"""

BATCH_SQL = """
WITH t AS MATERIALIZED (
  SELECT x.i, x.d, x.c, x.a, moneta_uuid7() AS id
    FROM unnest($2::uuid[], $3::uuid[], $4::numeric[]) WITH ORDINALITY AS x(d, c, a, i)
), legs AS MATERIALIZED (
  SELECT i, 0 AS k, d AS account_id, 'debit' AS direction, a, id FROM t
  UNION ALL
  SELECT i, 1, c, 'credit', a, id FROM t
), delta AS MATERIALIZED (
  SELECT account_id, coalesce(sum(a) FILTER (WHERE direction = 'debit'), 0) AS pd,
         coalesce(sum(a) FILTER (WHERE direction = 'credit'), 0) AS pc
    FROM legs GROUP BY account_id
), lk AS MATERIALIZED (
  SELECT b.account_id, b.posted_debits, b.posted_credits, b.pending_debits, b.pending_credits,
         ac.normal_balance, ac.overdraft_limit
    FROM balances b JOIN accounts ac ON ac.ledger_id = b.ledger_id AND ac.id = b.account_id
   WHERE b.ledger_id = $1 AND b.account_id = ANY (ARRAY(SELECT account_id FROM delta))
   ORDER BY b.account_id
     FOR UPDATE OF b
), go AS MATERIALIZED (
  SELECT (SELECT count(*) FROM lk) = (SELECT count(*) FROM delta) AND NOT EXISTS (
           SELECT 1 FROM lk JOIN delta USING (account_id)
            WHERE lk.overdraft_limit IS NOT NULL
              AND moneta_available(lk.normal_balance, delta.pd, delta.pc, 0, 0) < 0
              AND moneta_available(lk.normal_balance, lk.posted_debits + delta.pd,
                                   lk.posted_credits + delta.pc, lk.pending_debits,
                                   lk.pending_credits) < -lk.overdraft_limit) AS ok
), upd AS (
  UPDATE balances b SET posted_debits = b.posted_debits + delta.pd,
                        posted_credits = b.posted_credits + delta.pc, version = b.version + 1
    FROM delta, lk, go
   WHERE go.ok AND b.ledger_id = $1 AND b.account_id = delta.account_id
     AND lk.account_id = delta.account_id
     AND (lk.overdraft_limit IS NULL OR delta.pd = 0
          OR moneta_available(lk.normal_balance, b.posted_debits + delta.pd,
                              b.posted_credits + delta.pc, b.pending_debits,
                              b.pending_credits) >= -lk.overdraft_limit)
  RETURNING b.account_id
), tx AS (
  INSERT INTO transactions (ledger_id, id, status, postings, effective_at, completed_at)
  SELECT $1, t.id, 'posted', jsonb_build_array(jsonb_build_object(
           'debit', t.d, 'credit', t.c, 'amount', t.a, 'posted_amount', t.a)), now(), now()
    FROM t, go WHERE go.ok ORDER BY t.i
  RETURNING *
), ent AS (
  INSERT INTO entries (ledger_id, transaction_id, account_id, posting_index, direction, amount,
                       pending, balance_after, effective_at)
  SELECT $1, l.id, l.account_id, 0, l.direction, l.a, false,
         moneta_posted(lk.normal_balance, lk.posted_debits, lk.posted_credits)
           + sum(CASE WHEN l.direction = lk.normal_balance THEN l.a ELSE -l.a END)
               OVER (PARTITION BY l.account_id ORDER BY l.i, l.k ROWS UNBOUNDED PRECEDING),
         now()
    FROM legs l JOIN lk USING (account_id), go
   WHERE go.ok
   ORDER BY l.i, l.k
), ob AS (
  INSERT INTO outbox (ledger_id, type, data)
  SELECT $1, 'transaction.created', moneta_transaction_json(ROW(tx.*)::transactions) FROM tx
)
SELECT count(*) FROM tx
"""

SINGLE_SQL = SINGLE_TEMPLATE.format(ledger="$1", debit="$2", credit="$3", amount="$4")


class Ceiling:
    """Runs the two raw-SQL measurements (and pgbench) against the benchmark's ledger."""

    def __init__(
        self,
        database_url: str,
        ledger: BenchLedger,
        concurrency: int,
        duration_s: float,
        warmup_s: float,
        seed: int,
        cpu: CpuMeter,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.ledger = ledger
        self.ledger_uuid = uuid.UUID(ledger.ledger_id)
        self.wallets = [uuid.UUID(w) for w in ledger.wallets]
        self.concurrency = concurrency
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.seed = seed
        self.cpu = cpu

    def _pair(self, rng: random.Random) -> tuple[uuid.UUID, uuid.UUID]:
        d, c = rng.sample(range(len(self.wallets)), 2)
        return self.wallets[d], self.wallets[c]

    async def measure(self, kind: str, run: int, label: str) -> Measurement:
        """kind: 'single' or 'batch'."""
        m = Measurement(f"sql_{kind}", run)
        pool = await asyncpg.create_pool(
            self.dsn, min_size=self.concurrency, max_size=self.concurrency
        )
        recording = False
        stopping = False

        async def worker(index: int) -> None:
            rng = random.Random(f"{self.seed}:{kind}:{run}:{index}")
            async with pool.acquire() as conn:
                while not stopping:
                    if kind == "single":
                        d, c = self._pair(rng)
                        args: tuple[object, ...] = (d, c, rng.randint(1, MAX_AMOUNT))
                        sql = SINGLE_SQL
                    else:
                        pairs = [self._pair(rng) for _ in range(BATCH_SIZE)]
                        amounts = [rng.randint(1, MAX_AMOUNT) for _ in pairs]
                        args = ([p[0] for p in pairs], [p[1] for p in pairs], amounts)
                        sql = BATCH_SQL
                    live = recording
                    t0 = time.perf_counter()
                    try:
                        done = int(await conn.fetchval(sql, self.ledger_uuid, *args))
                        error = None if done else "sql nothing written (limit check)"
                    except asyncpg.PostgresError as exc:
                        done, error = 0, f"sql {exc.sqlstate} {type(exc).__name__}"
                    if live:
                        m.record((time.perf_counter() - t0) * 1000, done, error)

        try:
            tasks = [asyncio.create_task(worker(i)) for i in range(self.concurrency)]
            try:
                await asyncio.sleep(self.warmup_s)
                recording = True
                self.cpu.start()
                started = time.monotonic()
                progress = Progress(label, self.duration_s)
                while (left := started + self.duration_s - time.monotonic()) > 0:
                    progress.update(m.transfers, m.requests, sum(m.errors.values()))
                    await asyncio.sleep(min(0.25, left))
                stopping = True
                await asyncio.gather(*tasks)
                m.duration_s = time.monotonic() - started
                m.cpu_pct = self.cpu.stop()
            finally:
                stopping = True
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await pool.close()
        progress.finish(m.summary())
        return m

    async def pgbench(self, run: int, label: str) -> Measurement:
        """The single statement under pgbench (-c 8 -j 2), looking wallets up by code."""
        m = Measurement("sql_single_pgbench", run)
        binary = bin_dir() / "pgbench"
        if not binary.exists():
            m.status, m.note = "unavailable", f"no {binary}"
            return m
        # No ':' in the SQL text but before variables: pgbench would take ':w' for one.
        prefix = WALLET_PREFIX.replace(":", "\\x3a")
        lookup = (
            f"(SELECT id FROM accounts WHERE ledger_id = '{self.ledger_uuid}' "
            f"AND code = E'{prefix}' || :{{var}}::int)"
        )
        n = len(self.wallets)
        with tempfile.TemporaryDirectory(prefix="moneta-pgbench-") as folder:
            script = Path(folder) / "transfer.sql"
            script.write_text(self._pgbench_script(n, lookup))
            return await self._run_pgbench(m, binary, script, label)

    def _pgbench_script(self, n: int, lookup: str) -> str:
        return (
            f"\\set i random(0, {n - 1})\n\\set j random(0, {n - 2})\n"
            "\\set j case when :j >= :i then :j + 1 else :j end\n"
            f"\\set amount random(1, {MAX_AMOUNT})\n"
            + SINGLE_TEMPLATE.format(
                ledger=f"'{self.ledger_uuid}'",
                debit=lookup.format(var="i"),
                credit=lookup.format(var="j"),
                amount=":amount",
            ).strip()
            + ";\n"
        )

    async def _run_pgbench(
        self, m: Measurement, binary: Path, script: Path, label: str
    ) -> Measurement:
        clients = min(PGBENCH_CLIENTS, self.concurrency)
        argv = [str(binary), "-n", "-M", "prepared", "-c", str(clients)]
        argv += ["-j", str(PGBENCH_THREADS)]
        argv += ["-T", str(max(1, round(self.duration_s))), "-f", str(script), self.dsn]
        progress = Progress(label, self.duration_s)
        # No CPU figures here: pgbench's backends exit before they could be sampled.
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await process.communicate()
        text = out.decode(errors="replace")
        tps = re.search(r"tps = ([0-9.]+)", text)
        if process.returncode != 0 or tps is None:
            m.status, m.note = "failed", text[-500:]
            progress.finish(m.summary())
            return m
        processed = re.search(r"number of transactions actually processed: (\d+)", text)
        failed = re.search(r"number of failed transactions: (\d+)", text)
        latency = re.search(r"latency average = ([0-9.]+) ms", text)
        m.transfers = m.requests = int(processed.group(1)) if processed else 0
        m.duration_s = m.transfers / float(tps.group(1)) if float(tps.group(1)) else 0.0
        if failed and int(failed.group(1)):
            m.errors["sql failed"] = int(failed.group(1))
        mean = f"mean latency {latency.group(1)} ms" if latency else "no latency reported"
        m.note = f"pgbench -M prepared -c {clients} -j {PGBENCH_THREADS}, {mean}"
        progress.finish(m.summary())
        return m
