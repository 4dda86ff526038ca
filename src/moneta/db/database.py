"""The asyncpg pool every request and job borrows connections from."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from moneta.config import Settings

# A pooled connection or a plain one (the CLI): the repositories take either. Generic only
# in the stubs, hence the string.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def asyncpg_dsn(url: str) -> str:
    """SQLAlchemy-style URLs (postgresql+psycopg://) are accepted; asyncpg wants the bare scheme."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


async def init_connection(conn: Connection, role: str) -> None:
    # The role survives asyncpg's RESET ALL (role is GUC_NO_RESET_ALL): set it once.
    if role:
        await conn.execute(f"SET ROLE {_quote_ident(role)}")
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(conn: Connection) -> None:
    # Requests leave no session state behind (no LISTEN, cursors or advisory locks), so the
    # default reset query would be a wasted round trip on every release.
    return None


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Database:
    pool: asyncpg.Pool

    @classmethod
    async def connect(cls, url: str, settings: Settings) -> Database:
        role = settings.database_app_role

        async def init(conn: Connection) -> None:
            await init_connection(conn, role)

        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=min(settings.db_pool_min_size, settings.db_pool_max_size),
            max_size=settings.db_pool_max_size,
            init=init,
            reset=_no_reset,
            server_settings={
                "application_name": "moneta",
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "lock_timeout": str(settings.db_lock_timeout_ms),
                "idle_in_transaction_session_timeout": "60000",
            },
        )
        return cls(pool=pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """The unit of work: everything inside commits together or not at all."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
