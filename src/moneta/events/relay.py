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
import logging
import uuid
from dataclasses import dataclass, field

from moneta.config import Settings
from moneta.db.database import Database
from moneta.events import repository
from moneta.events.leases import Leases
from moneta.events.sinks import Sink

log = logging.getLogger(__name__)

# Ledgers looked at per pass, and published concurrently (each one strictly in order).
LEDGERS_PER_PASS = 1000
PARALLEL_LEDGERS = 8


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
            await self.publish_next(ledger, leases)

    async def publish_next(self, ledger: uuid.UUID, leases: Leases) -> int:
        """One batch of one ledger: read after the cursor, publish, then mark."""
        position = await leases.position(ledger)
        async with self.db.connection() as conn:
            events = await repository.batch(conn, ledger, position, self.settings.relay_batch_size)
        if not events:
            return 0
        await self.sink.publish(events)
        await leases.mark(ledger, events[-1].sequence)
        self.stats.published += len(events)
        return len(events)

    async def watch_lag(self, interval_s: float = 5.0) -> None:
        """Keeps `stats.lag_*` current for the metrics endpoint and logs a growing lag."""
        while True:
            try:
                async with self.db.connection() as conn:
                    events, age = await repository.lag(conn, self.sink.name)
                self.stats.lag_events, self.stats.lag_seconds = events, age
                if age > 60:
                    log.warning("relay lag: %d events, oldest %.0f s", events, age)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay lag query failed")
            await asyncio.sleep(interval_s)
