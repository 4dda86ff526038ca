"""`moneta relay`: publishes the sequenced event log to a broker, at least once, in order
per ledger.

Per pass: find ledgers whose cursor is behind their head, take the lease of each free one
(several replicas share the ledgers, one publisher per ledger at a time), then for each
owned ledger read the next batch after its cursor, publish it, and move the cursor only
once the broker acknowledged all of it. A relay killed at any point restarts from the
cursor: the events since then go out again, with the same ids and sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

from moneta.config import Settings
from moneta.db.database import Database
from moneta.events import repository
from moneta.events.leases import Leases
from moneta.events.sinks import Event, Sink

log = logging.getLogger(__name__)

# Ledgers looked at per pass, and published concurrently (each one strictly in order);
# batches of one ledger per turn, so a busy ledger does not starve the others.
LEDGERS_PER_PASS = 1000
PARALLEL_LEDGERS = 8
BATCHES_PER_TURN = 10


@dataclass
class RelayStats:
    published: int = 0
    failures: int = 0
    lag_events: int = 0
    lag_seconds: float = 0.0
    owned: set[uuid.UUID] = field(default_factory=set)


class Relay:
    def __init__(self, db: Database, url: str, settings: Settings, sink: Sink) -> None:
        self.db = db
        self.url = url
        self.settings = settings
        self.sink = sink
        self.stats = RelayStats()
        self._backoff = settings.relay_retry_min_s

    async def run_forever(self) -> None:
        await self._start_sink()
        try:
            while True:
                try:
                    async with Leases(
                        self.url, self.settings.database_app_role, self.sink.name
                    ) as leases:
                        await self._loop(leases)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Database gone (leases lost with the session) or broker down: back off,
                    # reconnect, and resume from the cursors.
                    self.stats.failures += 1
                    log.exception("relay pass failed; retrying in %.1f s", self._backoff)
                    await asyncio.sleep(self._backoff)
                    self._backoff = min(self._backoff * 2, self.settings.relay_retry_max_s)
        finally:
            await self.sink.close()

    async def _start_sink(self) -> None:
        """A broker that is not up yet is waited for, with the same backoff."""
        delay = self.settings.relay_retry_min_s
        while True:
            try:
                await self.sink.start()
                log.info("relay publishing to %s", self.sink.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s not reachable (%s); retrying in %.1f s", self.sink.name, exc, delay)
                await self.sink.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.relay_retry_max_s)

    async def _loop(self, leases: Leases) -> None:
        while True:
            behind = await leases.backlog(LEDGERS_PER_PASS)
            owned = await leases.claim(behind) if behind else []
            self.stats.owned = set(leases.held)
            if owned:
                queue: asyncio.Queue[uuid.UUID] = asyncio.Queue()
                for ledger in owned:
                    queue.put_nowait(ledger)
                workers = min(PARALLEL_LEDGERS, len(owned))
                await asyncio.gather(*(self._drain(queue, leases) for _ in range(workers)))
                self._backoff = self.settings.relay_retry_min_s
            else:
                await leases.release_idle(self.settings.relay_lease_idle_s)
                await asyncio.sleep(self.settings.relay_interval_s)

    async def _drain(self, queue: asyncio.Queue[uuid.UUID], leases: Leases) -> None:
        while not queue.empty():
            ledger = queue.get_nowait()
            await self.publish_ledger(ledger, leases)

    async def _read(self, ledger: uuid.UUID, after: int) -> list[Event]:
        async with self.db.connection() as conn:
            return await repository.batch(conn, ledger, after, self.settings.relay_batch_size)

    async def publish_ledger(self, ledger: uuid.UUID, leases: Leases) -> int:
        """Up to BATCHES_PER_TURN batches of one ledger, in order: publish one, wait for the
        broker, mark it. The next batch is read from the database meanwhile."""
        published = 0
        following = asyncio.create_task(self._read(ledger, await leases.position(ledger)))
        try:
            for _ in range(BATCHES_PER_TURN):
                events = await following
                if not events:
                    break
                following = asyncio.create_task(self._read(ledger, events[-1].sequence))
                await self.sink.publish(events)
                await leases.mark(ledger, events[-1].sequence)
                self.stats.published += len(events)
                published += len(events)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await following
        return published

    async def watch_lag(self, interval_s: float = 5.0) -> None:
        """Keeps `stats.lag_*` current for the metrics endpoint and logs a growing lag."""
        while True:
            try:
                async with self.db.connection() as conn:
                    lags = await repository.lags(conn, [self.sink.name])
                events, age = lags.get(self.sink.name, (0, 0.0))
                self.stats.lag_events, self.stats.lag_seconds = events, age
                if age > 60:
                    log.warning("relay lag: %d events, oldest %.0f s", events, age)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay lag query failed")
            await asyncio.sleep(interval_s)
