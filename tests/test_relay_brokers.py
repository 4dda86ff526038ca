"""The relay against real RabbitMQ and SQS (moto server), each SIGKILLed mid-stream:
every event id arrives at least once, in order per ledger, and nothing else."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aioboto3
import httpx
import psycopg

from tests.conftest import Server, Stack, new_tenant
from tests.relay_support import (
    RelayProcess,
    StreamCheck,
    expected_events,
    in_background,
    kill_mid_stream,
    wait_delivered,
    write_transfers,
)

AWS = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _run_with_kills(
    server: Server,
    admin: httpx.Client,
    db: psycopg.Connection[Any],
    env: dict[str, str],
    log: Path,
    counts: tuple[int, ...],
    kills: int,
) -> tuple[list[str], RelayProcess, int]:
    tenants = [new_tenant(admin, server) for _ in counts]
    ledgers = [t.ledger_id for t in tenants]
    relay = RelayProcess(env, log)
    relay.start()
    writers = [
        in_background(write_transfers, tenant, count, 50)
        for tenant, count in zip(tenants, counts, strict=True)
    ]
    try:
        mid_stream = kill_mid_stream(relay, db, ledgers, writers, kills)
        wait_delivered(db, env["MONETA_EVENTS_SINK"], ledgers)
    finally:
        relay.stop()
        print(relay.tail())
        for tenant in tenants:
            tenant.client.close()
    return ledgers, relay, mid_stream


def test_rabbitmq_relay_survives_sigkill(
    isolated_stack: Stack,
    rabbitmq_url: str,
    workdir: Path,
) -> None:
    stack = isolated_stack
    server, admin, base_env, db = stack.server, stack.admin, stack.env, stack.db
    exchange_name = f"moneta.test.{uuid.uuid4().hex[:8]}"
    queue_name = f"q.{exchange_name}"

    async def bind() -> None:
        # The subscriber's queue exists before the relay publishes (messages are mandatory).
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(queue_name, durable=True)
            await queue.bind(exchange, routing_key="#")

    asyncio.run(bind())
    env = {
        **base_env,
        "MONETA_EVENTS_SINK": "rabbitmq",
        "MONETA_RABBITMQ_URL": rabbitmq_url,
        "MONETA_RABBITMQ_EXCHANGE": exchange_name,
        "MONETA_RELAY_BATCH_SIZE": "100",
    }
    ledgers, relay, mid_stream = _run_with_kills(
        server, admin, db, env, workdir / "relay-rabbitmq.log", (600, 400), kills=3
    )
    assert mid_stream >= 3
    expected = expected_events(db, ledgers)

    async def drain() -> StreamCheck:
        check = StreamCheck()
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name, durable=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                message = await queue.get(fail=False, timeout=5)
                if message is None:
                    if check.distinct(ledgers) >= len(expected):
                        break
                    await asyncio.sleep(0.1)
                    continue
                check.add(queue_name, message.body)
                assert message.message_id == str(check.seen[-1][1])
                await message.ack()
            await queue.delete(if_unused=False, if_empty=False)
        return check

    check = asyncio.run(drain())
    duplicates = check.verify(expected, ledgers)
    print(f"rabbitmq: kills={relay.kills} events={len(expected)} duplicates={duplicates}")


def test_sqs_fifo_relay_survives_sigkill(
    isolated_stack: Stack,
    sqs_endpoint: str,
    workdir: Path,
) -> None:
    stack = isolated_stack
    server, admin, base_env, db = stack.server, stack.admin, stack.env, stack.db

    async def create_queue() -> str:
        async with aioboto3.Session().client("sqs", endpoint_url=sqs_endpoint, **AWS) as sqs:
            made = await sqs.create_queue(
                QueueName=f"moneta-{uuid.uuid4().hex[:8]}.fifo",
                Attributes={"FifoQueue": "true"},
            )
            url: str = made["QueueUrl"]
            return url

    queue_url = asyncio.run(create_queue())
    env = {
        **base_env,
        "MONETA_EVENTS_SINK": "sqs",
        "MONETA_SQS_QUEUE_URL": queue_url,
        "MONETA_SQS_ENDPOINT_URL": sqs_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "MONETA_AWS_REGION": "us-east-1",
        "MONETA_RELAY_BATCH_SIZE": "30",
    }
    # moto answers about 30 requests/s: a small volume, still several batches per kill.
    ledgers, relay, mid_stream = _run_with_kills(
        server, admin, db, env, workdir / "relay-sqs.log", (120, 80), kills=2
    )
    assert mid_stream >= 2
    expected = expected_events(db, ledgers)

    async def drain() -> StreamCheck:
        check = StreamCheck()
        async with aioboto3.Session().client("sqs", endpoint_url=sqs_endpoint, **AWS) as sqs:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                answer = await sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    # A group whose message is in flight is held back: keep that short.
                    VisibilityTimeout=5,
                    AttributeNames=["MessageGroupId"],
                )
                messages = answer.get("Messages", [])
                if not messages and check.distinct(ledgers) >= len(expected):
                    break
                for message in messages:
                    group = message["Attributes"]["MessageGroupId"]
                    check.add(f"sqs/{group}", message["Body"].encode())
                    await sqs.delete_message(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
            await sqs.delete_queue(QueueUrl=queue_url)
        return check

    check = asyncio.run(drain())
    duplicates = check.verify(expected, ledgers)
    print(f"sqs: kills={relay.kills} events={len(expected)} duplicates={duplicates}")
