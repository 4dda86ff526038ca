"""Smoke tests of the real brokers that scripts/services/ runs: each one takes what the
event relay needs from it (durable, acknowledged, ordered delivery) for a short round trip.
The fixtures come from tests/services.py, through conftest.py.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aioboto3
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from redis.asyncio import Redis

KAFKA_MESSAGES = 100


async def _kafka_round_trip(bootstrap: str) -> dict[str, list[int]]:
    topic = f"moneta-smoke-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, key=f"ledger-{i % 5}".encode(), value=str(i).encode())
            for i in range(KAFKA_MESSAGES)
        ]
        metadata = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    assert {m.partition for m in metadata} <= {0, 1, 2}

    received: dict[str, list[int]] = {}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        count = 0
        while count < KAFKA_MESSAGES:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    assert record.key is not None
                    assert record.value is not None
                    received.setdefault(record.key.decode(), []).append(int(record.value))
                    count += 1
        await consumer.commit()
    finally:
        await consumer.stop()
    return received


def test_kafka_produce_and_consume(kafka_bootstrap: str) -> None:
    received = asyncio.run(asyncio.wait_for(_kafka_round_trip(kafka_bootstrap), 60))
    # Every message exactly once, and in order within its key (so within its partition).
    assert sorted(v for values in received.values() for v in values) == list(range(KAFKA_MESSAGES))
    for key, values in received.items():
        assert values == sorted(values), key
        assert {v % 5 for v in values} == {int(key.removeprefix("ledger-"))}


async def _rabbitmq_round_trip(url: str) -> list[str]:
    name = f"moneta-smoke-{uuid.uuid4().hex[:12]}"
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            name, aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queue = await channel.declare_queue(name, exclusive=True)
        await queue.bind(exchange, routing_key="ledger.transfer.#")

        for routing_key, body in [
            ("ledger.transfer.posted", "t1"),
            ("ledger.account.opened", "not routed"),
            ("ledger.transfer.posted", "t2"),
            ("ledger.transfer.voided", "t3"),
        ]:
            message = aio_pika.Message(
                body.encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=body,
            )
            # aio-pika publishes with mandatory=True: what no queue takes comes back.
            confirmation = await exchange.publish(message, routing_key=routing_key)
            if body == "not routed":
                assert isinstance(confirmation, DeliveredMessage), confirmation
                assert isinstance(confirmation.delivery, Basic.Return)
            else:
                assert isinstance(confirmation, Basic.Ack), confirmation

        bodies: list[str] = []
        while (incoming := await queue.get(no_ack=False, fail=False, timeout=5)) is not None:
            bodies.append(incoming.body.decode())
            await incoming.ack()
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    return bodies


def test_rabbitmq_topic_exchange_with_confirms(rabbitmq_url: str) -> None:
    bodies = asyncio.run(asyncio.wait_for(_rabbitmq_round_trip(rabbitmq_url), 30))
    assert bodies == ["t1", "t2", "t3"]


async def _sqs_fifo_round_trip(endpoint: str) -> list[str]:
    session = aioboto3.Session()
    async with session.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ) as sqs:
        created = await sqs.create_queue(
            QueueName=f"moneta-smoke-{uuid.uuid4().hex[:12]}.fifo",
            Attributes={"FifoQueue": "true"},
        )
        queue_url = created["QueueUrl"]
        # The last one repeats a deduplication id: FIFO queues drop it.
        for body, dedup in [("e1", "d1"), ("e2", "d2"), ("e3", "d3"), ("e1 again", "d1")]:
            await sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=body,
                MessageGroupId="ledger-1",
                MessageDeduplicationId=dedup,
            )
        bodies: list[str] = []
        for _ in range(10):
            reply = await sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = reply.get("Messages", [])
            if not messages and bodies:
                break
            for message in messages:
                bodies.append(message["Body"])
                await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        await sqs.delete_queue(QueueUrl=queue_url)
    return bodies


def test_sqs_fifo_on_moto(sqs_endpoint: str) -> None:
    bodies = asyncio.run(asyncio.wait_for(_sqs_fifo_round_trip(sqs_endpoint), 30))
    assert bodies == ["e1", "e2", "e3"]


# A compare-and-set that the server runs atomically: the kind of Lua an idempotency key or
# a lock needs.
REDIS_CAS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
    return 1
end
return 0
"""


async def _redis_round_trip(url: str) -> list[object]:
    key = f"moneta-smoke-{uuid.uuid4().hex[:12]}"
    async with Redis.from_url(url, decode_responses=True) as client:
        seen: list[object] = [
            await client.ping(),
            await client.set(key, "pending", ex=60, nx=True),
            await client.set(key, "other", ex=60, nx=True),  # NX: already there
            await client.get(key),
            await client.eval(REDIS_CAS, 1, key, "pending", "done"),
            await client.eval(REDIS_CAS, 1, key, "pending", "again"),
            await client.get(key),
            await client.ttl(key) > 0,
            await client.delete(key),
        ]
    return seen


def test_redis_set_get_and_lua(redis_url: str) -> None:
    seen = asyncio.run(asyncio.wait_for(_redis_round_trip(redis_url), 30))
    assert seen == [True, True, None, "pending", 1, 0, "done", True, 1]
