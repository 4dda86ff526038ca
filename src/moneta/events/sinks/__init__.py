"""Where the relay publishes: one module per broker, behind the `Sink` protocol."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from moneta.config import Settings


@dataclass(frozen=True)
class Event:
    """One sequenced event, with its envelope already serialized (JSON built by SQL)."""

    ledger_id: uuid.UUID
    sequence: int
    id: uuid.UUID
    type: str
    body: bytes

    @property
    def family(self) -> str:
        """`transaction` for `transaction.posted`: Kafka topics are per family."""
        return self.type.split(".", 1)[0]


class Sink(Protocol):
    # The consumer name under which progress is kept in event_cursors.
    name: str

    async def start(self) -> None: ...

    async def publish(self, events: list[Event]) -> None:
        """Publish one ledger's events in order; return only once the broker has
        acknowledged every one of them, raise otherwise (the relay retries the batch)."""
        ...

    async def close(self) -> None: ...


def make_sink(settings: Settings) -> Sink:
    # Imported here so an api process never loads broker clients it does not use.
    if settings.events_sink == "kafka":
        from moneta.events.sinks.kafka import KafkaSink

        return KafkaSink(settings)
    if settings.events_sink == "rabbitmq":
        from moneta.events.sinks.rabbitmq import RabbitMQSink

        return RabbitMQSink(settings)
    if settings.events_sink == "sqs":
        from moneta.events.sinks.sqs import SQSSink

        return SQSSink(settings)
    raise ValueError("MONETA_EVENTS_SINK must be one of kafka, rabbitmq, sqs")
