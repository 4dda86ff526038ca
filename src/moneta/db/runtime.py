"""Which PostgreSQL to use: the configured URL, or the embedded server (started and
migrated on demand). Returned as a handle that knows whether to stop it afterwards."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from dataclasses import dataclass

from moneta.config import Settings
from moneta.db import migrate
from moneta.db.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


@dataclass
class DatabaseHandle:
    url: str
    embedded: EmbeddedPostgres | None = None

    async def watch(self, interval_s: float = 1.0) -> None:
        """Restart the embedded server if it dies under us (killed, OOM): the pool reconnects
        on demand, and crash recovery replays everything that was committed."""
        if self.embedded is None:
            return
        embedded = self.embedded
        while True:
            await asyncio.sleep(interval_s)
            if not await asyncio.to_thread(embedded.is_running):
                log.error("embedded PostgreSQL is gone; restarting it")
                try:
                    await asyncio.to_thread(embedded.start)
                except Exception:
                    log.exception("embedded PostgreSQL did not restart; retrying")

    def close(self) -> None:
        """Stop the embedded server if this process started it."""
        if self.embedded is not None and self.embedded.started_here:
            log.info("stopping embedded PostgreSQL")
            self.embedded.stop()


def open_database(settings: Settings, *, migrate_embedded: bool = True) -> DatabaseHandle:
    if settings.database_url:
        return DatabaseHandle(settings.database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Two processes starting on one data dir (e.g. `moneta keys create` while `moneta serve`
    # starts) take turns: the second finds the server running and reuses it.
    with (settings.data_dir / ".start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        embedded = EmbeddedPostgres(settings.data_dir)
        url = embedded.start()
        if migrate_embedded:
            migrate.upgrade(url, settings.events_slot)
    log.info("embedded PostgreSQL ready in %s", settings.data_dir)
    return DatabaseHandle(url, embedded)
