"""The relay against a real Kafka broker (KRaft, started by scripts/services/kafka.sh):
10,000 transactions' events published while the relay is SIGKILLed again and again; the
consumer must see every event id at least once, in order per ledger, and nothing else."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from tests.conftest import Stack, new_tenant
from tests.relay_support import (
    RelayProcess,
    StreamCheck,
    expected_events,
    in_background,
    kill_mid_stream,
    wait_delivered,
    write_transfers,
)


def consume_all(
    bootstrap: str, prefix: str, ledgers: list[str], want: int, timeout_s: float = 120
) -> StreamCheck:
    """Read the three topics from the start until `want` distinct events of `ledgers`."""

    async def run() -> StreamCheck:
        check = StreamCheck()
        topics = [f"{prefix}.{family}" for family in ("ledger", "account", "transaction")]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            # No group: every partition is assigned, read from the earliest offset.
            consumer.subscribe(topics)
            deadline = time.monotonic() + timeout_s
            while check.distinct(ledgers) < want and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in batches.items():
                    for record in records:
                        assert record.value is not None
                        check.add(f"{tp.topic}/{tp.partition}", record.value)
            # Anything after the count would be an extra: read a little longer.
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    assert record.value is not None
                    check.add(f"{tp.topic}/{tp.partition}", record.value)
        finally:
            await consumer.stop()
        return check

    return asyncio.run(run())


def _relay_env(base_env: dict[str, str], bootstrap: str, prefix: str) -> dict[str, str]:
    return {
        **base_env,
        "MONETA_EVENTS_SINK": "kafka",
        "MONETA_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MONETA_KAFKA_TOPIC_PREFIX": prefix,
        # Small batches: a kill lands between publish and mark more often.
        "MONETA_RELAY_BATCH_SIZE": "200",
        "MONETA_RELAY_LEASE_IDLE_S": "1",
    }


def test_sigkilled_relay_loses_nothing_and_keeps_order(
    isolated_stack: Stack,
    kafka_bootstrap: str,
    workdir: Path,
) -> None:
    stack = isolated_stack
    server, admin, base_env, db = stack.server, stack.admin, stack.env, stack.db
    prefix = f"t{uuid.uuid4().hex[:10]}"
    tenants = [new_tenant(admin, server) for _ in range(3)]
    ledgers = [t.ledger_id for t in tenants]
    relay = RelayProcess(_relay_env(base_env, kafka_bootstrap, prefix), workdir / "relay-kafka.log")
    relay.start()
    # 10,000 transactions over three ledgers, written while the relay runs and dies.
    writers = [
        in_background(write_transfers, tenant, count, 100)
        for tenant, count in zip(tenants, (5000, 3000, 2000), strict=True)
    ]
    try:
        mid_stream_kills = kill_mid_stream(relay, db, ledgers, writers, kills=5)
        wait_delivered(db, "kafka", ledgers)
    finally:
        relay.stop()
        print(relay.tail())  # shown by pytest if anything below fails
        for tenant in tenants:
            tenant.client.close()

    assert mid_stream_kills >= 5, f"only {mid_stream_kills} kills landed mid-stream"
    expected = expected_events(db, ledgers)
    assert len(expected) >= 10_000 + 3 * 12  # transactions, accounts, ledgers
    check = consume_all(kafka_bootstrap, prefix, ledgers, len(expected))
    duplicates = check.verify(expected, ledgers)
    print(
        f"kills={relay.kills} mid-stream={mid_stream_kills} events={len(expected)} "
        f"seen={len(check.seen)} duplicates={duplicates}"
    )
    # At least once, not "many times": replays are bounded by the batches in flight at kills.
    assert duplicates <= relay.kills * 200 * 8


def test_two_replicas_share_ledgers_without_duplicates(
    isolated_stack: Stack,
    kafka_bootstrap: str,
    workdir: Path,
) -> None:
    stack = isolated_stack
    server, admin, base_env, db = stack.server, stack.admin, stack.env, stack.db
    prefix = f"t{uuid.uuid4().hex[:10]}"
    tenants = [new_tenant(admin, server) for _ in range(4)]
    ledgers = [t.ledger_id for t in tenants]
    env = _relay_env(base_env, kafka_bootstrap, prefix)
    replicas = [RelayProcess(env, workdir / f"relay-kafka-{i}.log") for i in range(2)]
    for replica in replicas:
        replica.start()
    try:
        writers = [in_background(write_transfers, tenant, 300, 50) for tenant in tenants]
        for thread, errors in writers:
            thread.join(timeout=120)
            assert not errors, errors
        wait_delivered(db, "kafka", ledgers, timeout_s=60)
        assert all(replica.alive() for replica in replicas)
    finally:
        for replica in replicas:
            replica.stop()
        for tenant in tenants:
            tenant.client.close()
    expected = expected_events(db, ledgers)
    check = consume_all(kafka_bootstrap, prefix, ledgers, len(expected))
    assert check.verify(expected, ledgers) == 0, "a replica published another's ledger"
