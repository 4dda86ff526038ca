"""The event relay, measured: how fast `moneta relay` empties a backlog from the outbox
into Kafka, and how far behind it falls while the batch workload writes.

Per run, after that run's workloads and ceilings:
1. skip: wait until the sequencer (inside `moneta serve`) has numbered every outbox row
   written so far, then move the relay's cursor to the head. What the earlier workloads
   wrote (millions of events in a full run) is not part of the measurement. This is why
   --relay is self-hosted only: on a real deployment it would make the relay skip events.
2. backlog: with no relay running, write --relay-backlog transfers through the batch
   endpoint (one event each) and wait until the sequencer has numbered them all.
3. drain: start `moneta relay` (the server's environment, Kafka, a topic prefix of its
   own) and poll its cursor every 20 ms until it reaches the head. The rate is counted
   from the first acknowledged batch, so process start-up and topic creation are left
   out (they are reported separately).
4. lag: with that relay still running, run the batch workload as usual, sampling every
   0.5 s head - cursor and the age of the oldest sequenced but unpublished event; then
   time how long everything written takes to reach Kafka once the load stops.
5. raw ceiling: one aiokafka producer sends as many messages of the events' mean size
   (bench/kafka.py).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from bench import kafka
from bench.client import ApiError, Client
from bench.host import SelfHosted
from bench.load import Load, Picker
from bench.setup import BATCH_PATH, BenchLedger
from bench.stats import _tree_cpu_s, percentile, unexpected_errors
from moneta.db.database import asyncpg_dsn

CONSUMER = "kafka"  # KafkaSink.name: the relay's row in event_cursors
DEFAULT_RELAY_BATCH = 500  # MONETA_RELAY_BATCH_SIZE's default
DRAIN_POLL_S = 0.02
LAG_SAMPLE_S = 0.5
# No progress for this long means the relay or the sequencer is stuck, not slow.
STALL_TIMEOUT_S = 120.0
MAX_AMOUNT = 100
EVENT_SIZE_SAMPLE = 1000
FILL_ATTEMPTS = 5
CLEANUP_TIMEOUT_S = 30.0
RETRY_STATUSES = frozenset({0, 429, 503})  # 0: no answer (connection error, timeout)

_LAG_SQL = """
SELECT h.sequence - coalesce(c.sequence, 0) AS events, coalesce(c.sequence, 0) AS cursor,
       coalesce(extract(epoch FROM clock_timestamp() - o.created_at), 0)::float8 AS age,
       coalesce(extract(epoch FROM clock_timestamp() - e.sequenced_at), 0)::float8 AS waited
  FROM event_heads h
  LEFT JOIN event_cursors c ON c.consumer = $2 AND c.ledger_id = h.ledger_id
  LEFT JOIN event_log e ON e.ledger_id = h.ledger_id AND e.sequence = coalesce(c.sequence, 0) + 1
  LEFT JOIN outbox o ON o.ledger_id = e.ledger_id AND o.id = e.outbox_id
 WHERE h.ledger_id = $1
"""


@dataclass
class RelayConfig:
    bootstrap: str
    broker_origin: str
    backlog: int
    topic_prefix: str  # this harness run's; each measured run adds -r<n>
    relay_batch_size: int


def relay_batch_size() -> int:
    """What the relay will use: it inherits the harness's environment."""
    try:
        return int(os.environ.get("MONETA_RELAY_BATCH_SIZE", DEFAULT_RELAY_BATCH))
    except ValueError:
        return DEFAULT_RELAY_BATCH


def new_topic_prefix() -> str:
    # Unique per harness run, so runs against a long-lived broker never share topics.
    return f"moneta-bench-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class RelayBench:
    """Use as `async with`; `run()` once per measured run; `results()` for the report.
    A failure is recorded (with the relay's log tail) and ends the relay measurements;
    the rest of the benchmark carries on."""

    def __init__(
        self,
        cfg: RelayConfig,
        host: SelfHosted,
        database_url: str,
        ledger: BenchLedger,
        api: Client,
        load: Load,
    ) -> None:
        self.cfg = cfg
        self.host = host
        self.database_url = database_url
        self.ledger = ledger
        self.ledger_uuid = uuid.UUID(ledger.ledger_id)
        self.api = api
        self.load = load
        self.runs: list[dict[str, Any]] = []
        self.error: str | None = None
        self.cleanup_note = ""
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> RelayBench:
        self._conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.close()
        try:
            # Bounded: a broker that went away must not hold up the report.
            deleted = await asyncio.wait_for(
                kafka.delete_topics(self.cfg.bootstrap, self.cfg.topic_prefix), CLEANUP_TIMEOUT_S
            )
            self.cleanup_note = f"deleted {len(deleted)} topic(s) {self.cfg.topic_prefix}*"
        except Exception as exc:
            self.cleanup_note = f"topics {self.cfg.topic_prefix}* not deleted: {exc!r}"

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "use RelayBench as an async context manager"
        return self._conn

    # -- one measured run --------------------------------------------------------------

    async def run(self, run: int, of: str, baseline: dict[str, Any] | None) -> None:
        """Measure once; `baseline` is this run's batch workload (relay off), if it ran."""
        if self.error is not None:
            return
        try:
            self.runs.append(await self._measure(run, of, baseline))
        except Exception as exc:
            self.error = f"run {run}: {type(exc).__name__}: {exc}"
            sys.stderr.write(f"relay measurement failed: {self.error}\n")
            sys.stderr.write(f"relay log tail:\n{self.host.log_tail('relay')}\n")

    async def _measure(self, run: int, of: str, baseline: dict[str, Any] | None) -> dict[str, Any]:
        if baseline is None:  # --workloads without batch: measure it here, relay off
            baseline = (await self.load.measure("batch", run, f"batch relay-off {of}")).summary()
            baseline_from = "the relay section (batch not in --workloads)"
        else:
            baseline_from = "this run's batch workload"
        head, watermark = await self._skip_to_head()
        target, backlog_times = await self._backlog(run, of, head, watermark)
        prefix = f"{self.cfg.topic_prefix}-r{run}"
        relay = self.host.spawn("relay", ["relay"], self._env(prefix))
        try:
            drain = await self._drain(relay, head, target, of)
            lag = await self._lag_under_load(relay, run, of, head, watermark)
        finally:
            self.host.stop(relay)
        raw = await self._raw(f"{prefix}.raw", head, target, of)
        on, off = lag.pop("batch_relay_on"), baseline["transfers_per_s"]
        return {
            "run": run,
            "backlog_events": target - head,
            **backlog_times,
            **drain,
            **lag,
            "batch_relay_on": on,
            "batch_relay_on_tps": on["transfers_per_s"],
            "batch_relay_off_tps": off,
            "batch_relay_off_from": baseline_from,
            "batch_ratio": on["transfers_per_s"] / off if off else None,
            "raw_messages": raw.messages,
            "raw_message_bytes": raw.message_bytes,
            "raw_pipelined_per_s": raw.pipelined_per_s,
            "raw_stop_and_wait_per_s": raw.stop_and_wait_per_s,
            "raw_large_batches_per_s": raw.large_batches_per_s,
            "relay_vs_raw": _div(drain["drain_events_per_s"], raw.pipelined_per_s),
        }

    async def _backlog(
        self, run: int, of: str, head: int, watermark: int
    ) -> tuple[int, dict[str, float]]:
        """Write the backlog with no relay running; the head once all of it is numbered."""
        t0 = time.monotonic()
        await self._fill(run)
        filled_s = time.monotonic() - t0
        target = await self._wait_head(await self._written(head, watermark), "the backlog")
        sequenced_s = time.monotonic() - t0 - filled_s
        sys.stderr.write(
            f"relay {of}: backlog of {target - head:,} events written in {filled_s:.1f} s, "
            f"numbered {sequenced_s:.1f} s later\n"
        )
        times = {
            "backlog_write_s": round(filled_s, 2),
            "backlog_sequenced_s": round(sequenced_s, 2),
        }
        return target, times

    async def _raw(self, topic: str, head: int, target: int, of: str) -> kafka.RawResult:
        """The producer ceiling for as many messages as the backlog, of its mean size."""
        raw = await kafka.raw_ceiling(
            self.cfg.bootstrap,
            topic,
            target - head,
            await self._event_bytes(head, target),
            str(self.ledger_uuid).encode(),
            self.cfg.relay_batch_size,
        )
        sys.stderr.write(
            f"relay {of}: raw producer {raw.pipelined_per_s:,.0f} msg/s pipelined, "
            f"{raw.stop_and_wait_per_s:,.0f} msg/s awaiting acks every "
            f"{self.cfg.relay_batch_size}, {raw.large_batches_per_s:,.0f} msg/s with "
            f"{kafka.LARGE_BATCH_BYTES // 1024} KiB batches\n"
        )
        return raw

    def _env(self, prefix: str) -> dict[str, str]:
        return {
            "MONETA_EVENTS_SINK": "kafka",
            "MONETA_KAFKA_BOOTSTRAP_SERVERS": self.cfg.bootstrap,
            "MONETA_KAFKA_TOPIC_PREFIX": prefix,
        }

    # -- the event log -----------------------------------------------------------------

    async def _head(self) -> int:
        head: int | None = await self.conn.fetchval(
            "SELECT sequence FROM event_heads WHERE ledger_id = $1", self.ledger_uuid
        )
        return head or 0

    async def _cursor(self) -> int:
        position: int | None = await self.conn.fetchval(
            "SELECT sequence FROM event_cursors WHERE consumer = $1 AND ledger_id = $2",
            CONSUMER,
            self.ledger_uuid,
        )
        return position or 0

    async def _written(self, head: int, watermark: int) -> int:
        """The head once every outbox row is numbered: `head` covered every row up to
        `watermark`, and identity values only grow, so the rest have higher ids."""
        newer: int = await self.conn.fetchval(
            "SELECT count(*) FROM outbox WHERE ledger_id = $1 AND id > $2",
            self.ledger_uuid,
            watermark,
        )
        return head + newer

    async def _skip_to_head(self) -> tuple[int, int]:
        """Everything written so far numbered and marked as published; (head, the highest
        outbox id it covers). No writer runs now, so no row can still appear below it."""
        written: int = await self.conn.fetchval(
            "SELECT count(*) FROM outbox WHERE ledger_id = $1", self.ledger_uuid
        )
        head = await self._wait_head(written, "the earlier workloads' events")
        await self.conn.execute(
            """INSERT INTO event_cursors (consumer, ledger_id, sequence) VALUES ($1, $2, $3)
               ON CONFLICT (consumer, ledger_id)
               DO UPDATE SET sequence = excluded.sequence, updated_at = now()""",
            CONSUMER,
            self.ledger_uuid,
            head,
        )
        watermark: int = await self.conn.fetchval(
            "SELECT coalesce(max(id), 0) FROM outbox WHERE ledger_id = $1", self.ledger_uuid
        )
        return head, watermark

    async def _wait_head(self, target: int, what: str) -> int:
        """Until the sequencer has numbered up to `target`."""
        return await _wait_for(self._head, target, f"the sequencer to number {what}", None)

    async def _event_bytes(self, after: int, upto: int) -> int:
        """Mean size of the envelopes the relay published (the raw ceiling's message)."""
        size: int | None = await self.conn.fetchval(
            """SELECT avg(octet_length(moneta_event_json(e, o)::text))::int
                 FROM event_log e JOIN outbox o ON o.ledger_id = e.ledger_id
                                               AND o.id = e.outbox_id
                WHERE e.ledger_id = $1 AND e.sequence > $2 AND e.sequence <= $3""",
            self.ledger_uuid,
            max(after, upto - EVENT_SIZE_SAMPLE),
            upto,
        )
        return size or 600

    # -- the phases --------------------------------------------------------------------

    async def _fill(self, run: int) -> None:
        """--relay-backlog transfers through the batch endpoint, at the load's concurrency."""
        size = self.load.cfg.batch_size
        sizes = [size] * (self.cfg.backlog // size)
        if self.cfg.backlog % size:
            sizes.append(self.cfg.backlog % size)
        picker = Picker(self.ledger.wallets, None, self.load.cfg.seed, self.ledger.funded)
        queue = list(enumerate(sizes))

        async def worker() -> None:
            while queue:
                index, n = queue.pop()
                rng = random.Random(f"{self.load.cfg.seed}:relay-fill:{run}:{index}")
                items = []
                for _ in range(n):
                    debit, credit = picker.pair(rng)
                    posting = {
                        "debit": debit,
                        "credit": credit,
                        "amount": rng.randint(1, MAX_AMOUNT),
                    }
                    items.append({"postings": [posting]})
                body = {"ledger_id": self.ledger.ledger_id, "atomic": False, "transactions": items}
                await self._post_batch(body)

        await asyncio.gather(*(worker() for _ in range(self.load.cfg.concurrency)))

    async def _post_batch(self, body: dict[str, Any]) -> None:
        """Retry what the server turns away for now (503: the database did not answer in
        time). The backlog is counted in the database, so a retried attempt that did
        commit only makes it a little larger, never wrong."""
        status, raw = 0, b""
        for attempt in range(FILL_ATTEMPTS):
            try:
                status, raw = await self.api.send("POST", BATCH_PATH, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, raw = 0, repr(exc).encode()
            if status == 200:
                return
            if status not in RETRY_STATUSES:
                break
            await asyncio.sleep(0.2 * 2**attempt)
        raise ApiError("relay backlog batch", status, raw)

    async def _drain(
        self, relay: subprocess.Popen[bytes], start: int, target: int, of: str
    ) -> dict[str, Any]:
        """Spawned relay -> cursor at `target`; the rate from the first acknowledged batch."""
        spawned = time.monotonic()
        first: tuple[float, int, float] | None = None  # when, position, relay CPU seconds

        def on_progress(position: int) -> None:
            nonlocal first
            if first is None and position > start:
                first = (time.monotonic(), position, _tree_cpu_s(relay.pid))

        await _wait_for(self._cursor, target, "the relay to drain the backlog", relay, on_progress)
        done, cpu_done = time.monotonic(), _tree_cpu_s(relay.pid)
        assert first is not None
        first_at, first_position, first_cpu = first
        steady_s = done - first_at
        # One batch only (a backlog <= the relay's batch): there is no steady part to time.
        steady = (target - first_position) / steady_s if target > first_position else None
        result = {
            "drain_s": round(done - spawned, 3),
            "drain_first_ack_s": round(first_at - spawned, 3),
            "drain_events_per_s": steady or (target - start) / (done - spawned),
            "drain_events_per_s_incl_start": (target - start) / (done - spawned),
            "relay_cpu_pct_drain": round(100 * (cpu_done - first_cpu) / steady_s, 1)
            if steady_s > 0
            else None,
        }
        sys.stderr.write(
            f"relay {of}: drained {target - start:,} events in {done - spawned:.2f} s "
            f"(first ack after {first_at - spawned:.2f} s): "
            f"{result['drain_events_per_s']:,.0f} events/s\n"
        )
        return result

    async def _lag_under_load(
        self, relay: subprocess.Popen[bytes], run: int, of: str, head: int, watermark: int
    ) -> dict[str, Any]:
        # Age: since the event's transaction began (end to end: the write itself, the
        # sequencer, the relay). Waited: since it was numbered (the relay's share alone).
        events: list[float] = []
        ages: list[float] = []
        waited: list[float] = []
        published: list[tuple[float, int]] = []  # (when, cursor): the publish rate under load
        cpu0, t0 = _tree_cpu_s(relay.pid), time.monotonic()
        task = asyncio.create_task(self.load.measure("batch", run, f"batch relay-on {of}"))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=LAG_SAMPLE_S)
                _check_alive(relay)
                if self.load.recording and not task.done():
                    row = await self.conn.fetchrow(_LAG_SQL, self.ledger_uuid, CONSUMER)
                    assert row is not None
                    events.append(float(row["events"]))
                    ages.append(float(row["age"]))
                    waited.append(float(row["waited"]))
                    published.append((time.monotonic(), int(row["cursor"])))
            measured = task.result().summary()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        stopped = time.monotonic()
        cpu_pct = round(100 * (_tree_cpu_s(relay.pid) - cpu0) / (stopped - t0), 1)
        # Everything written reaches Kafka: numbered first, then published.
        final = await self._wait_head(await self._written(head, watermark), "the loaded run")
        await _wait_for(self._cursor, final, "the relay to catch up", relay)
        caught_up_s = time.monotonic() - stopped
        result: dict[str, Any] = {
            "lag_samples": len(events),
            "lag_events_p50": percentile(events, 0.50),
            "lag_events_p99": percentile(events, 0.99),
            "lag_events_max": max(events, default=None),
            "lag_s_p50": percentile(ages, 0.50),
            "lag_s_p99": percentile(ages, 0.99),
            "lag_s_max": max(ages, default=None),
            "lag_waited_s_p50": percentile(waited, 0.50),
            "lag_waited_s_p99": percentile(waited, 0.99),
            "lag_waited_s_max": max(waited, default=None),
            "caught_up_s": round(caught_up_s, 3),
            "published_per_s_load": _rate(published),
            "relay_cpu_pct_load": cpu_pct,
            "batch_relay_on": measured,
        }
        sys.stderr.write(
            f"relay {of}: lag p50/p99/max {_num(result['lag_events_p50'])}/"
            f"{_num(result['lag_events_p99'])}/{_num(result['lag_events_max'])} events, "
            f"caught up {caught_up_s:.2f} s after the load\n"
        )
        return result

    # -- the report --------------------------------------------------------------------

    def results(self) -> dict[str, Any]:
        on_errors = sum(unexpected_errors(r["batch_relay_on"]["errors"]) for r in self.runs)
        return {
            "status": "failed" if self.error else "ok",
            "reason": self.error or "",
            "broker": f"{self.cfg.bootstrap} ({self.cfg.broker_origin})",
            "topic_prefix": self.cfg.topic_prefix,
            "topics": self.cleanup_note,
            "backlog_requested": self.cfg.backlog,
            "relay_batch_size": self.cfg.relay_batch_size,
            "runs": self.runs,
            "median": medians(self.runs),
            "unexpected_errors": on_errors,
        }


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median of every number the runs have in common (None where a run has none)."""
    if not runs:
        return {}
    out: dict[str, float] = {}
    for key, value in runs[0].items():
        if key == "run" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if values:
            out[key] = statistics.median(values)
    return out


async def _wait_for(
    read: Callable[[], Awaitable[int]],
    target: int,
    what: str,
    relay: subprocess.Popen[bytes] | None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Poll `read()` until it reaches `target`; fail if it stalls or the relay dies."""
    position = await read()
    moved = time.monotonic()
    while position < target:
        await asyncio.sleep(DRAIN_POLL_S)
        if relay is not None:
            _check_alive(relay)
        now, was = time.monotonic(), position
        position = await read()
        if on_progress is not None:
            on_progress(position)
        if position != was:
            moved = now
        elif now - moved > STALL_TIMEOUT_S:
            raise RuntimeError(
                f"waited for {what}: at {position:,} of {target:,}, "
                f"no progress for {STALL_TIMEOUT_S:.0f} s"
            )
    return position


def _check_alive(relay: subprocess.Popen[bytes]) -> None:
    if relay.poll() is not None:
        raise RuntimeError(f"moneta relay exited with status {relay.returncode}")


def _rate(points: list[tuple[float, int]]) -> float | None:
    """Events per second between the first and the last (time, position)."""
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"
