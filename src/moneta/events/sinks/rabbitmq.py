"""RabbitMQ: a durable topic exchange, routing key = event type, persistent messages with
publisher confirms. Messages are `mandatory`: one no queue is bound to comes back as an
error and is retried, never silently dropped."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from moneta.config import Settings
from moneta.events.sinks import Event


class RabbitMQSink:
    name = "rabbitmq"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(self.settings.rabbitmq_url)
        self.channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await self.channel.declare_exchange(
            self.settings.rabbitmq_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def publish(self, events: list[Event]) -> None:
        if self.exchange is None:
            raise RuntimeError("sink not started")
        # One confirm at a time keeps the order certain; a batch is one ledger's events.
        for event in events:
            await self.exchange.publish(
                aio_pika.Message(
                    event.body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(event.id),
                    type=event.type,
                    headers={"ledger_id": str(event.ledger_id), "sequence": event.sequence},
                ),
                routing_key=event.type,
                mandatory=True,
            )

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = self.channel = self.exchange = None
