"""The logical replication slot the sequencer reads the outbox's inserts from.

A slot is per cluster, not per database, so its default name carries the database's.
It holds WAL until the sequencer confirms it: some process must run the sequencer (see
`Settings.inprocess_worker`, `moneta worker`, `moneta relay`)."""

from __future__ import annotations

import logging
import re

import psycopg

log = logging.getLogger(__name__)

PUBLICATION = "moneta_outbox"


class LogicalDecodingUnavailableError(RuntimeError):
    """The server does not run with wal_level=logical (on RDS: rds.logical_replication=1)."""


def slot_name(configured: str | None, database: str) -> str:
    if configured:
        return configured
    return ("moneta_" + re.sub(r"[^a-z0-9_]", "_", database.lower()))[:63]


def ensure_slot(url: str, configured: str | None) -> str:
    """Create the slot if missing; returns its name. Outbox rows written before it existed
    (a database upgraded from before the event stream) are numbered from the table.

    Needs the REPLICATION attribute (or superuser) on the migrating role."""
    with psycopg.connect(url, autocommit=True) as conn:
        level = conn.execute("SHOW wal_level").fetchone()
        if level is None or level[0] != "logical":
            raise LogicalDecodingUnavailableError(
                f"wal_level is {level[0] if level else '?'}; the event stream needs "
                "wal_level=logical (RDS: rds.logical_replication=1)"
            )
        database = conn.execute("SELECT current_database()").fetchone()
        name = slot_name(configured, database[0] if database else "")
        exists = conn.execute(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,)
        ).fetchone()
        if exists is None:
            # Waits for transactions running now to end; everything committed after this
            # point is decoded, everything before is visible to the backlog query below.
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
            backlog = conn.execute("SELECT moneta_sequence_backlog()").fetchone()
            log.info("created replication slot %s; numbered %s earlier events", name, backlog)
        return name
