"""Scheduled jobs (`moneta worker`, or inside the api process in dev): fold hot accounts'
balance deltas, expire pending transactions whose time is up, drop idempotency keys past
their retention, and number new events (the sequencer)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from moneta import invariants
from moneta.accounts import repository as accounts_repository
from moneta.config import Settings
from moneta.db.database import Database
from moneta.events.sequencer import Sequencer
from moneta.idempotency import repository as idempotency_repository
from moneta.transactions import repository as transactions_repository

log = logging.getLogger(__name__)


async def run_once(db: Database, settings: Settings) -> tuple[int, int]:
    """One pass of every job; returns (transactions expired, idempotency keys dropped).

    Each job runs on its own: one that fails (e.g. the database restarting) must not stop
    the others, so expiry never waits on folding."""
    expired = dropped = 0
    async with db.connection() as conn:
        # Fold hot accounts' deltas first: reads stay exact either way, this keeps them short.
        await _job(
            "fold balance deltas", accounts_repository.fold_deltas(conn, settings.fold_batch_size)
        )
        expired = await _job(
            "expire pending transactions",
            transactions_repository.expire_due(conn, settings.worker_batch_size),
        )
        dropped = await _job(
            "prune idempotency keys",
            idempotency_repository.delete_older_than(
                conn, settings.idempotency_retention_s, settings.worker_batch_size
            ),
        )
    return expired, dropped


async def _job(name: str, work: Awaitable[int]) -> int:
    try:
        return await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("worker job failed: %s", name)
        return 0


async def run_forever(db: Database, settings: Settings) -> None:
    while True:
        try:
            expired, dropped = await run_once(db, settings)
            if expired or dropped:
                log.info("worker: expired %d transactions, dropped %d keys", expired, dropped)
            # A full batch means more is due: go again at once.
            if expired >= settings.worker_batch_size:
                continue
        except asyncio.CancelledError:
            raise
        except Exception:
            # No connection (the database may be restarting): the next pass retries.
            log.exception("worker pass failed")
        await asyncio.sleep(settings.worker_interval_s)


async def check_invariants_forever(db: Database, settings: Settings) -> None:
    # Polls more often than the interval: the check itself finds out whether it is due.
    poll_s = min(settings.invariant_check_interval_s, 60.0)
    while True:
        try:
            await invariants.check_if_due(db, settings.invariant_check_interval_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("invariant check failed to run")
        await asyncio.sleep(poll_s)


async def run_with_sequencer(db: Database, url: str, settings: Settings) -> None:
    """The scheduled jobs, the invariant check and the event sequencer (which waits its
    turn if another process already sequences): what `moneta worker` and the in-process
    worker run."""
    jobs = [run_forever(db, settings), check_invariants_forever(db, settings)]
    if settings.sequencer_enabled:
        jobs.append(Sequencer(url, settings).run_forever())
    await asyncio.gather(*jobs)
