"""Kafka for the relay benchmark: the project's own single-node broker
(scripts/services/kafka.sh), the raw producer ceiling, and cleaning up the run's topics.

The ceiling is what one aiokafka producer, configured like the relay's (acks=all,
idempotent, linger 5 ms, no compression, 16 KiB batches), sends per second when nothing
else is in the way: messages of the relay's event size, all with one key (one partition,
as one ledger's events are), built before the clock starts. The same with 256 KiB batches
shows what the relay's producer settings leave on the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "services" / "kafka.sh"
# A cold start fetches the broker's jars with Maven once; later starts take seconds.
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 120.0
PARTITIONS = 3  # the relay's default (MONETA_KAFKA_TOPIC_PARTITIONS)
WARMUP_MESSAGES = 2000
ATTEMPTS = 2
# aiokafka's default max_batch_size, which the relay keeps: with one key (one partition)
# every produce request carries at most this much, about 20 of the relay's events.
RELAY_MAX_BATCH_BYTES = 16_384
# For comparison: what larger requests give (well under brokers' 1 MB message.max.bytes).
LARGE_BATCH_BYTES = 262_144


class KafkaUnavailableError(RuntimeError):
    """The broker could not be started; `str()` is a one-line reason for the report."""


@dataclass
class Broker:
    bootstrap: str
    started_here: bool
    origin: str  # for the report: who runs it


def _script(action: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", str(SCRIPT), action],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailableError(
            f"kafka.sh {action}: no answer within {timeout_s:.0f} s"
        ) from exc


def _bootstrap(stdout: str) -> str | None:
    for line in stdout.splitlines():
        if line.startswith("bootstrap="):
            return line.removeprefix("bootstrap=").strip()
    return None


def start_broker() -> Broker:
    """$MONETA_KAFKA_BOOTSTRAP_SERVERS if set (left alone), else the project's broker:
    reused if it runs already, else started here (and then stopped by `stop_broker`)."""
    given = os.environ.get("MONETA_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        return Broker(given, False, "$MONETA_KAFKA_BOOTSTRAP_SERVERS")
    if not SCRIPT.exists():
        raise KafkaUnavailableError(f"{SCRIPT} not found")
    status = _script("status", 30.0)
    running = status.returncode == 0 and _bootstrap(status.stdout)
    if running:
        return Broker(running, False, "scripts/services/kafka.sh, already running")
    done = _script("start", START_TIMEOUT_S)
    address = _bootstrap(done.stdout)
    if done.returncode != 0 or address is None:
        # The script ends a failure with `error: <reason>` on stderr.
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
        reason = errors[-1].removeprefix("error: ") if errors else f"exit {done.returncode}"
        raise KafkaUnavailableError(f"scripts/services/kafka.sh start failed: {reason}")
    return Broker(address, True, "scripts/services/kafka.sh, started by the harness")


def stop_broker(broker: Broker) -> str | None:
    """Stop the broker if the harness started it; a warning on failure, else None."""
    if not broker.started_here:
        return None
    try:
        done = _script("stop", STOP_TIMEOUT_S)
    except KafkaUnavailableError as exc:
        return str(exc)
    return None if done.returncode == 0 else f"kafka.sh stop: {done.stderr.strip()[-500:]}"


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="moneta-bench")
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete the run's topics: the broker's data folder outlives the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="moneta-bench")
    await admin.start()
    try:
        ours = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()


def _producer(bootstrap: str, max_batch_size: int = RELAY_MAX_BATCH_BYTES) -> AIOKafkaProducer:
    # The relay's settings (moneta/events/sinks/kafka.py), so only the relay's own work differs.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="moneta-bench-raw",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        compression_type=None,
        max_batch_size=max_batch_size,
    )


@dataclass
class RawResult:
    messages: int
    message_bytes: int
    pipelined_per_s: float  # the relay's producer settings
    stop_and_wait_per_s: float  # the same, awaiting the acks every relay batch
    large_batches_per_s: float  # pipelined, LARGE_BATCH_BYTES per partition request


Messages = list[tuple[bytes, list[tuple[str, bytes]]]]


async def raw_ceiling(
    bootstrap: str, topic: str, count: int, size: int, key: bytes, window: int
) -> RawResult:
    """`count` messages of `size` bytes as fast as one producer takes them (pipelined),
    again in windows of `window` awaiting each window's acks (the relay's pattern without
    its database round trips), and pipelined with larger producer batches. Each is the
    best of ATTEMPTS: a ceiling, and the broker shares two cores with everything else."""
    await create_topic(bootstrap, topic)
    body = b'{"pad":"' + b"x" * max(0, size - 10) + b'"}'
    messages = [(body, [("moneta-sequence", str(i).encode())]) for i in range(count)]
    pipelined, stop_and_wait = await _best(bootstrap, topic, key, messages, [count, window])
    (large,) = await _best(bootstrap, topic, key, messages, [count], LARGE_BATCH_BYTES)
    return RawResult(count, len(body), pipelined, stop_and_wait, large)


async def _best(
    bootstrap: str,
    topic: str,
    key: bytes,
    messages: Messages,
    windows: list[int],
    max_batch_size: int = RELAY_MAX_BATCH_BYTES,
) -> list[float]:
    """The best rate per window over ATTEMPTS rounds, the windows interleaved."""
    producer = _producer(bootstrap, max_batch_size)
    await producer.start()
    try:
        # Untimed: the first send fetches the new topic's metadata, and the broker (a JVM)
        # and the connection warm up, which otherwise lands on whichever variant runs first.
        await _send_all(producer, topic, key, messages[:WARMUP_MESSAGES], WARMUP_MESSAGES)
        rates = [[await _send_all(producer, topic, key, messages, w) for w in windows]]
        for _ in range(ATTEMPTS - 1):
            rates.append([await _send_all(producer, topic, key, messages, w) for w in windows])
    finally:
        await producer.stop()
    return [max(column) for column in zip(*rates, strict=True)]


async def _send_all(
    producer: AIOKafkaProducer,
    topic: str,
    key: bytes,
    messages: Messages,
    window: int,
) -> float:
    """Messages per second, awaiting the broker's acks after every `window` messages."""
    t0 = time.perf_counter()
    for start in range(0, len(messages), window):
        # send() only enqueues (waiting for buffer space); the futures resolve on ack.
        acks = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for value, headers in messages[start : start + window]
        ]
        await asyncio.gather(*acks)
    return len(messages) / (time.perf_counter() - t0)
