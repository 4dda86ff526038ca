"""Kafka: a topic per event family (`<prefix>.transaction`, ...), keyed by ledger id so a
ledger's events stay in one partition, in order. The producer is idempotent with
acks=all: retries inside the client never duplicate or reorder a partition."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from moneta.config import Settings
from moneta.events.schemas import EVENT_TYPES
from moneta.events.sinks import Event


def connection_options(settings: Settings) -> dict[str, Any]:
    """Brokers, TLS and SASL options shared by the producer and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": "moneta-relay",
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "SCRAM-SHA-512"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


class KafkaSink:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None

    def topic(self, family: str) -> str:
        return f"{self.settings.kafka_topic_prefix}.{family}"

    async def start(self) -> None:
        await self._create_topics()
        producer = AIOKafkaProducer(
            **connection_options(self.settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # A ledger's events share one partition: the default 16 KiB batch would carry
            # about 20 of them per request (measured: 2-3x slower than 256 KiB).
            max_batch_size=262_144,
            compression_type=None,
        )
        await producer.start()
        self.producer = producer

    async def _create_topics(self) -> None:
        """Topics are created if missing (brokers usually refuse to auto-create them)."""
        admin = AIOKafkaAdminClient(**connection_options(self.settings))
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            families = sorted({event_type.split(".")[0] for event_type in EVENT_TYPES})
            wanted = [
                NewTopic(
                    self.topic(family),
                    self.settings.kafka_topic_partitions,
                    self.settings.kafka_replication_factor,
                )
                for family in families
                if self.topic(family) not in existing
            ]
            if wanted:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(wanted)
        finally:
            await admin.close()

    async def publish(self, events: list[Event]) -> None:
        if self.producer is None:
            raise RuntimeError("sink not started")
        # send() only enqueues, in call order; one partition's batches keep that order.
        acks = [
            await self.producer.send(
                self.topic(event.family),
                value=event.body,
                key=str(event.ledger_id).encode(),
                headers=[
                    ("moneta-event-id", str(event.id).encode()),
                    ("moneta-event-type", event.type.encode()),
                    ("moneta-sequence", str(event.sequence).encode()),
                ],
            )
            for event in events
        ]
        await asyncio.gather(*acks)

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
