"""The scheduled invariant check (run by the worker): every promise of the ledger that can
be verified after the fact, over all ledgers. A violation is logged at ERROR with the
first findings (and so reaches Sentry) and exported as `moneta_invariant_violations`."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from moneta.db import locks
from moneta.db.database import Database

log = logging.getLogger(__name__)

SAMPLE = 20  # findings kept with each run, for the operator


@dataclass(frozen=True)
class CheckResult:
    violations: int
    sample: list[dict[str, str]]
    duration_ms: int


async def check_if_due(db: Database, interval_s: float) -> CheckResult | None:
    """Run the check unless another process runs it now or ran it within the interval:
    any number of workers may call this on the same schedule."""
    async with db.connection() as conn:
        due = await conn.fetchval(
            """SELECT pg_try_advisory_lock($1) AND coalesce(
                        (SELECT max(checked_at) FROM invariant_checks)
                          < now() - make_interval(secs => $2), true)""",
            locks.INVARIANTS,
            interval_s,
        )
        try:
            return await check(db) if due else None
        finally:
            await conn.execute("SELECT pg_advisory_unlock_all()")


async def check(db: Database, timeout_s: float = 600.0) -> CheckResult:
    started = time.monotonic()
    async with db.transaction() as conn:
        # A full pass over entries can outlast the request timeout; it reads a snapshot.
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
        rows = await conn.fetch(
            "SELECT ledger_id::text, kind, detail FROM moneta_check_invariants()"
        )
        sample = [dict(row) for row in rows[:SAMPLE]]
        duration_ms = int((time.monotonic() - started) * 1000)
        await conn.execute(
            "INSERT INTO invariant_checks (duration_ms, violations, sample) VALUES ($1, $2, $3)",
            duration_ms,
            len(rows),
            sample,
        )
    if rows:
        log.error(
            "LEDGER INVARIANTS BROKEN: %d violations; first: %s", len(rows), json.dumps(sample)
        )
    else:
        log.info("ledger invariants hold (%d ms)", duration_ms)
    return CheckResult(len(rows), sample, duration_ms)
