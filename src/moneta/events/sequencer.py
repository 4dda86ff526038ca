"""The sequencer: numbers each ledger's events in commit order.

It peeks committed outbox inserts from the logical slot (commit order is WAL order),
appends them to `event_log` with the next sequence of their ledger, commits, and only then
advances the slot. A crash in between replays the same changes, which
`moneta_sequence_events` skips. One process at a time holds the advisory lock and
sequences; the others block on it, so any number of processes may run this loop.

It connects as the configured login role, not the application role: reading a slot takes
the REPLICATION attribute."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from moneta.config import Settings
from moneta.db import locks
from moneta.db.database import asyncpg_dsn
from moneta.events.decoding import CommittedTransaction, Decoder
from moneta.events.slot import PUBLICATION, ensure_slot

log = logging.getLogger(__name__)

NUDGE_EVERY_S = 0.5


class Sequencer:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.slot = ""
        self.decoder = Decoder()
        self.sequenced = 0  # events numbered by this process, for metrics and tests
        self._nudge = True
        self._nudged_at = 0.0

    async def run_forever(self) -> None:
        """Leader election, then drain the slot; reconnects after any failure."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                self.slot = await asyncio.to_thread(
                    ensure_slot, self.url, self.settings.events_slot
                )
                conn = await asyncpg.connect(
                    asyncpg_dsn(self.url), server_settings={"application_name": "moneta-sequencer"}
                )
                # Blocks until the current leader's session ends (stopped, killed, cut off).
                await conn.execute("SELECT pg_advisory_lock($1)", locks.SEQUENCER)
                log.info("sequencing events from slot %s", self.slot)
                while True:
                    if await self.drain(conn) == 0:
                        await asyncio.sleep(self.settings.sequencer_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sequencer failed; retrying")
                await asyncio.sleep(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    async def drain(self, conn: asyncpg.Connection) -> int:
        """One batch: returns how many events were numbered (0: nothing was waiting)."""
        rows = await conn.fetch(
            """SELECT data FROM pg_logical_slot_peek_binary_changes(
                 $1, NULL, $2, 'proto_version', '1', 'publication_names', $3)""",
            self.slot,
            self.settings.sequencer_batch_changes,
            PUBLICATION,
        )
        committed: list[CommittedTransaction] = []
        for row in rows:
            done = self.decoder.feed(row["data"])
            if done is not None:
                committed.append(done)
        if not committed:
            return 0
        ledgers = [r.ledger_id for tx in committed for r in tx.rows]
        outbox_ids = [r.outbox_id for tx in committed for r in tx.rows]
        async with conn.transaction():
            numbered: int = await conn.fetchval(
                "SELECT moneta_sequence_events($1::uuid[], $2::bigint[])", ledgers, outbox_ids
            )
        # Only now may the slot forget these changes: a crash before this line replays them.
        await conn.execute(
            "SELECT pg_replication_slot_advance($1, $2::pg_lsn)",
            self.slot,
            committed[-1].end_lsn,  # asyncpg encodes pg_lsn from an int
        )
        self.sequenced += numbered
        await self._nudge_restart_point(conn)
        return max(numbered, 1)

    async def _nudge_restart_point(self, conn: asyncpg.Connection) -> None:
        """Every peek decodes from the slot's restart point, which only moves past a
        'running transactions' WAL record (written every 15 s by default): under load each
        peek would re-read up to 15 s of WAL. Writing one now and then keeps that short.
        Needs PostgreSQL 16 and the right to call it; without, the sequencer is slower."""
        if not self._nudge or time.monotonic() - self._nudged_at < NUDGE_EVERY_S:
            return
        self._nudged_at = time.monotonic()
        try:
            await conn.execute("SELECT pg_log_standby_snapshot()")
        except (asyncpg.UndefinedFunctionError, asyncpg.InsufficientPrivilegeError) as exc:
            log.info(
                "sequencer: no pg_log_standby_snapshot (%s); decoding windows stay longer", exc
            )
            self._nudge = False
