"""Amazon SQS: a FIFO queue, message group = ledger id (SQS keeps each group in order),
deduplication id = event id (SQS drops a redelivery within its 5-minute window)."""

from __future__ import annotations

import contextlib
from typing import Any

import aioboto3

from moneta.config import Settings
from moneta.events.sinks import Event

# SQS limits: 10 messages and 256 KiB per SendMessageBatch.
MAX_BATCH_MESSAGES = 10
MAX_BATCH_BYTES = 256 * 1024


class SQSSink:
    name = "sqs"

    def __init__(self, settings: Settings) -> None:
        if not settings.sqs_queue_url:
            raise ValueError("MONETA_SQS_QUEUE_URL is required for the sqs sink")
        self.settings = settings
        self.queue_url = settings.sqs_queue_url
        self._stack = contextlib.AsyncExitStack()
        self.client: Any = None

    async def start(self) -> None:
        session = aioboto3.Session()
        self.client = await self._stack.enter_async_context(
            session.client(
                "sqs",
                region_name=self.settings.aws_region,
                endpoint_url=self.settings.sqs_endpoint_url,
            )
        )

    async def publish(self, events: list[Event]) -> None:
        if self.client is None:
            raise RuntimeError("sink not started")
        for chunk in _chunks(events):
            answer = await self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "MessageBody": event.body.decode(),
                        "MessageGroupId": str(event.ledger_id),
                        "MessageDeduplicationId": event.id.hex,
                        "MessageAttributes": {
                            "type": {"DataType": "String", "StringValue": event.type},
                            "sequence": {"DataType": "Number", "StringValue": str(event.sequence)},
                        },
                    }
                    for index, event in enumerate(chunk)
                ],
            )
            # A partial failure fails the batch: later chunks must not overtake it.
            if answer.get("Failed"):
                raise RuntimeError(f"SQS refused messages: {answer['Failed']}")

    async def close(self) -> None:
        await self._stack.aclose()
        self.client = None


def _chunks(events: list[Event]) -> list[list[Event]]:
    chunks: list[list[Event]] = [[]]
    size = 0
    for event in events:
        weight = len(event.body) + 200  # attributes and framing
        if chunks[-1] and (
            len(chunks[-1]) == MAX_BATCH_MESSAGES or size + weight > MAX_BATCH_BYTES
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += weight
    return [chunk for chunk in chunks if chunk]
