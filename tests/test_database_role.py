"""Invariant 4: the service's role can append entries but never change or delete them."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import psycopg
import pytest

from moneta.config import Settings
from moneta.db.database import Database
from tests.conftest import Tenant


def test_app_role_cannot_update_or_delete_entries(
    tenant: Tenant, db: psycopg.Connection[Any]
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 10)
    db.execute("SET ROLE moneta_app")
    try:
        for statement in (
            "UPDATE entries SET amount = 1 WHERE ledger_id = %s",
            "DELETE FROM entries WHERE ledger_id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement, (tenant.ledger_id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("TRUNCATE entries")
    finally:
        db.execute("RESET ROLE")


def test_even_the_owner_cannot_rewrite_entries(tenant: Tenant, db: psycopg.Connection[Any]) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    tenant.transfer("cash", "alice", 10)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("UPDATE entries SET amount = 1 WHERE ledger_id = %s", (tenant.ledger_id,))
    count = db.execute(
        "SELECT count(*) FROM entries WHERE ledger_id = %s", (tenant.ledger_id,)
    ).fetchone()
    assert count == (2,)


def test_the_service_pool_connects_as_the_app_role(database_url: str) -> None:
    """The pool the API uses (moneta.db.database) is the one that may not rewrite entries."""

    async def attempt() -> str:
        db = await Database.connect(database_url, Settings(database_url=database_url))
        try:
            async with db.connection() as conn:
                role: str = await conn.fetchval("SELECT current_user")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("UPDATE entries SET amount = amount")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute("DELETE FROM entries")
                return role
        finally:
            await db.close()

    assert asyncio.run(attempt()) == "moneta_app"
