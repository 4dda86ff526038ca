"""Which relay replica publishes which ledger: a session advisory lock per (consumer,
ledger), held on one dedicated connection. If the replica dies, PostgreSQL ends the
session and the locks with it; another replica takes the ledger over on its next pass.

Progress is written on the same connection, so a replica whose session is gone (and
with it, its leases) cannot mark anything."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import TracebackType

import asyncpg

from moneta.db.database import Connection, asyncpg_dsn, init_connection
from moneta.events import repository


class Leases:
    def __init__(self, url: str, role: str, consumer: str) -> None:
        self.url = url
        self.role = role
        self.consumer = consumer
        self.held: dict[uuid.UUID, float] = {}  # ledger -> when it last had work
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one query at a time on the shared session

    async def __aenter__(self) -> Leases:
        conn = await asyncpg.connect(
            asyncpg_dsn(self.url),
            server_settings={"application_name": f"moneta-relay-{self.consumer}"},
        )
        await init_connection(conn, self.role)
        self._conn = conn
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.held.clear()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Ending the session releases every lease at once; after a failure the
            # connection may be broken, so it is cut rather than closed politely.
            if kind is None:
                await conn.close()
            else:
                conn.terminate()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("leases not open")
        return self._conn

    async def claim(self, ledgers: list[uuid.UUID]) -> list[uuid.UUID]:
        """The subset of `ledgers` this replica holds after trying to take the free ones."""
        now = time.monotonic()
        owned = []
        async with self._lock:
            for ledger in ledgers:
                if ledger not in self.held:
                    taken = await self.conn.fetchval(
                        "SELECT pg_try_advisory_lock(hashtextextended($1 || ':' || $2, 0))",
                        self.consumer,
                        str(ledger),
                    )
                    if not taken:
                        continue
                self.held[ledger] = now
                owned.append(ledger)
        return owned

    async def release_idle(self, idle_s: float) -> None:
        """Let go of ledgers without work for a while, so new replicas get a share."""
        cutoff = time.monotonic() - idle_s
        async with self._lock:
            for ledger, active in list(self.held.items()):
                if active < cutoff:
                    await self.conn.fetchval(
                        "SELECT pg_advisory_unlock(hashtextextended($1 || ':' || $2, 0))",
                        self.consumer,
                        str(ledger),
                    )
                    del self.held[ledger]

    async def backlog(self, limit: int) -> list[uuid.UUID]:
        async with self._lock:
            return await repository.ledgers_behind(self.conn, self.consumer, limit)

    async def position(self, ledger: uuid.UUID) -> int:
        async with self._lock:
            return await repository.cursor(self.conn, self.consumer, ledger)

    async def mark(self, ledger: uuid.UUID, sequence: int) -> None:
        if ledger not in self.held:
            raise RuntimeError(f"not holding ledger {ledger}")
        async with self._lock:
            await repository.advance_cursor(self.conn, self.consumer, ledger, sequence)
