"""Helpers for the relay's end-to-end tests: run `moneta relay` as a real process, write
load through the API, and check what a consumer saw against the event log."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import Tenant


@dataclass
class RelayProcess:
    env: dict[str, str]
    log_path: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moneta", "relay", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no chance to flush, mark or close anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def write_transfers(tenant: Tenant, count: int, per_batch: int, pause_s: float = 0.0) -> None:
    """`count` transfers from a limit-free source to ten wallets, in batches."""
    tenant.account("src", normal_balance="debit", overdraft_limit=None)
    for i in range(10):
        tenant.account(f"w{i}")
    written = 0
    while written < count:
        size = min(per_batch, count - written)
        items = [
            {"postings": [{"debit": "src", "credit": f"w{(written + k) % 10}", "amount": 1}]}
            for k in range(size)
        ]
        response = tenant.client.post(
            "/v1/transactions/batch",
            json={"ledger_id": tenant.ledger_id, "transactions": items},
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        written += size
        time.sleep(pause_s)


def in_background(work: Any, *args: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work(*args)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def expected_events(db: psycopg.Connection[Any], ledgers: list[str]) -> dict[str, tuple[str, int]]:
    """event id -> (ledger id, sequence) for every sequenced event of these ledgers."""
    rows = db.execute(
        """SELECT o.event_id::text, e.ledger_id::text, e.sequence
             FROM event_log e JOIN outbox o ON o.ledger_id = e.ledger_id AND o.id = e.outbox_id
            WHERE e.ledger_id = ANY(%s::uuid[])""",
        (ledgers,),
    ).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def wait_sequenced(db: psycopg.Connection[Any], ledgers: list[str], timeout_s: float = 60) -> None:
    """Until every outbox row of these ledgers has its place in the event log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        missing = db.execute(
            """SELECT count(*) FROM outbox o WHERE o.ledger_id = ANY(%s::uuid[])
                 AND NOT EXISTS (SELECT 1 FROM event_log e
                                  WHERE e.ledger_id = o.ledger_id AND e.outbox_id = o.id)""",
            (ledgers,),
        ).fetchone()
        if missing is not None and missing[0] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the sequencer did not number every event")


def delivered(db: psycopg.Connection[Any], consumer: str, ledgers: list[str]) -> int:
    row = db.execute(
        "SELECT coalesce(sum(sequence), 0) FROM event_cursors "
        "WHERE consumer = %s AND ledger_id = ANY(%s::uuid[])",
        (consumer, ledgers),
    ).fetchone()
    return int(row[0]) if row else 0


def heads(db: psycopg.Connection[Any], ledgers: list[str]) -> int:
    row = db.execute(
        "SELECT coalesce(sum(sequence), 0) FROM event_heads WHERE ledger_id = ANY(%s::uuid[])",
        (ledgers,),
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class StreamCheck:
    """What a consumer saw, in the order it saw it per stream (a topic, a queue)."""

    seen: list[tuple[str, str, str, int]] = field(default_factory=list)  # stream, id, ledger, seq

    def add(self, stream: str, body: bytes) -> None:
        event = httpx.Response(200, content=body).json()
        self.seen.append((stream, event["id"], event["ledger_id"], event["sequence"]))

    def distinct(self, ledgers: list[str]) -> int:
        """Distinct events of these ledgers seen so far (the relay publishes every ledger's
        events, other tests' included)."""
        return len({s[1] for s in self.seen if s[2] in ledgers})

    def verify(self, expected: dict[str, tuple[str, int]], ledgers: list[str]) -> int:
        """Every expected id at least once, nothing else of these ledgers, and per (stream,
        ledger) every event either newer than all before it or a replay of one already
        seen. Returns the number of duplicates."""
        ours = [s for s in self.seen if s[2] in ledgers]
        ids = {s[1] for s in ours}
        missing = sorted(expected[i] for i in set(expected) - ids)
        assert ids == set(expected), (
            f"missing {len(missing)} (first: {missing[:5]}), unexpected {len(ids - set(expected))}"
        )
        newest: dict[tuple[str, str], int] = defaultdict(int)
        first_seen: set[str] = set()
        duplicates = 0
        for stream, event_id, ledger, sequence in ours:
            assert expected[event_id] == (ledger, sequence), f"{event_id} changed its place"
            if event_id in first_seen:
                duplicates += 1
                continue
            assert sequence > newest[(stream, ledger)], (
                f"{stream}/{ledger}: {sequence} after {newest[(stream, ledger)]}"
            )
            newest[(stream, ledger)] = sequence
            first_seen.add(event_id)
        return duplicates


def kill_mid_stream(
    relay: RelayProcess,
    db: psycopg.Connection[Any],
    ledgers: list[str],
    writers: list[tuple[threading.Thread, list[BaseException]]],
    kills: int,
) -> int:
    """SIGKILL the relay while it publishes, `kills` times, restarting it each time; then
    wait for the writers. Returns how many kills landed with events still unpublished."""
    consumer = relay.env["MONETA_EVENTS_SINK"]
    mid_stream = 0
    for _ in range(kills * 6):
        # Once this incarnation has marked progress, at a random moment within the next
        # batches (between publish and mark included).
        mark = delivered(db, consumer, ledgers)
        deadline = time.monotonic() + 15
        while delivered(db, consumer, ledgers) == mark and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0, 0.15))
        writing = any(thread.is_alive() for thread, _ in writers)
        behind = writing or delivered(db, consumer, ledgers) < heads(db, ledgers)
        relay.kill()
        relay.start()
        mid_stream += behind
        if not writing and mid_stream >= kills:
            break
    for thread, errors in writers:
        thread.join(timeout=120)
        assert not errors, errors
    return mid_stream


def wait_delivered(
    db: psycopg.Connection[Any], consumer: str, ledgers: list[str], timeout_s: float = 120
) -> int:
    """Until the consumer's cursors reach the ledgers' heads; returns the event count."""
    wait_sequenced(db, ledgers)
    total = heads(db, ledgers)
    deadline = time.monotonic() + timeout_s
    while delivered(db, consumer, ledgers) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    assert delivered(db, consumer, ledgers) == total, "the relay did not catch up"
    return total
