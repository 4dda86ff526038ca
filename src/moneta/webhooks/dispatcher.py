"""`moneta webhooks`: turns the event log into signed HTTP deliveries.

Two loops. The fan-out reads each ledger's new events after its `webhooks` cursor and
writes one delivery per subscribed endpoint, in the transaction that moves the cursor.
The sender claims due deliveries (a claim that runs out is retried by anyone), POSTs them
signed, logs the attempt, and schedules the next one with exponential backoff and jitter
until the retry window closes; then the delivery is dead-lettered (status `dead`), where
an operator can redeliver it. Any number of dispatchers may run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from moneta import __version__
from moneta.config import Settings
from moneta.db.database import Database
from moneta.events import repository as events
from moneta.webhooks import repository
from moneta.webhooks.repository import DueDelivery
from moneta.webhooks.signing import SIGNATURE_HEADER, sign
from moneta.webhooks.ssrf import UnsafeURLError, check_url, parse_networks, pinned

log = logging.getLogger(__name__)

CONSUMER = "webhooks"
FAN_OUT_BATCH = 1000


def backoff_s(attempts: int, settings: Settings) -> float:
    """After the n-th failed attempt: min * 2^(n-1), capped, +-20% so retries spread out."""
    base = min(
        settings.webhook_backoff_max_s, settings.webhook_backoff_min_s * 2.0 ** max(attempts - 1, 0)
    )
    jitter: float = random.uniform(0.8, 1.2)
    return base * jitter


class Dispatcher:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.allowed = parse_networks(settings.webhook_allowed_networks)
        self.outcomes: Counter[str] = Counter()  # succeeded / failed / dead, for metrics

    async def run_forever(self) -> None:
        await asyncio.gather(self._forever(self.fan_out_once), self._send_forever())

    async def _forever(self, step: Callable[[], Awaitable[int]]) -> None:
        while True:
            try:
                if await step() == 0:
                    await asyncio.sleep(self.settings.webhook_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatcher pass failed; retrying")
                await asyncio.sleep(1.0)

    async def _send_forever(self) -> None:
        """Keep up to `webhook_concurrency` attempts running; claim only for free slots, so
        one slow receiver holds one slot, never the other tenants' deliveries."""
        limits = httpx.Limits(max_connections=self.settings.webhook_concurrency)
        # No redirects: a 3xx to an internal address would walk around the SSRF check.
        async with httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_s,
            follow_redirects=False,
            limits=limits,
            headers={"User-Agent": f"Moneta-Webhooks/{__version__}"},
        ) as client:
            running: set[asyncio.Task[None]] = set()
            while True:
                free = self.settings.webhook_concurrency - len(running)
                claimed = 0
                if free > 0:
                    try:
                        claimed = await self._start_due(client, free, running)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("claiming webhook deliveries failed; retrying")
                        await asyncio.sleep(1.0)
                        continue
                # Slots full or nothing more due: wake when an attempt ends (a free slot)
                # or after the interval (newly due deliveries).
                if running:
                    await asyncio.wait(
                        running,
                        timeout=self.settings.webhook_interval_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                elif claimed == 0:
                    await asyncio.sleep(self.settings.webhook_interval_s)

    async def _start_due(
        self, client: httpx.AsyncClient, slots: int, running: set[asyncio.Task[None]]
    ) -> int:
        lease_s = self.settings.webhook_timeout_s + 30
        async with self.db.connection() as conn:
            due = await repository.claim_due(conn, slots, lease_s)
        for delivery in due:
            task = asyncio.create_task(self.attempt(client, delivery))
            running.add(task)
            task.add_done_callback(running.discard)
        return len(due)

    async def fan_out_once(self) -> int:
        async with self.db.connection() as conn:
            ledgers = await events.ledgers_behind(conn, CONSUMER, 1000)
        offered = 0
        for ledger in ledgers:
            async with self.db.transaction() as conn:
                position = await events.cursor(conn, CONSUMER, ledger)
                last = await repository.fan_out(
                    conn, ledger, position, FAN_OUT_BATCH, self.settings.webhook_retry_window_s
                )
                if last is not None:
                    await events.advance_cursor(conn, CONSUMER, ledger, last)
                    offered += last - position
        return offered

    async def attempt(self, client: httpx.AsyncClient, delivery: DueDelivery) -> None:
        started = time.monotonic()
        status_code, error = await self._post(client, delivery)
        duration_ms = int((time.monotonic() - started) * 1000)
        retry_in = 0.0
        if status_code is not None and 200 <= status_code < 300:
            outcome = "succeeded"
        else:
            retry_in = backoff_s(delivery.attempts, self.settings)
            give_up = delivery.give_up_at.timestamp() <= time.time() + retry_in
            outcome = "dead" if give_up or delivery.endpoint_deleted else "pending"
        self.outcomes["failed" if outcome == "pending" else outcome] += 1
        if outcome == "dead":
            log.warning("webhook delivery %s dead-lettered: %s", delivery.id, error)
        try:
            async with self.db.connection() as conn:
                await repository.record_attempt(
                    conn, delivery.id, status_code, error, duration_ms, outcome, retry_in
                )
        except Exception:
            # The claim runs out and the delivery is attempted again: at least once.
            log.exception("could not record webhook attempt %s", delivery.id)

    async def _post(
        self, client: httpx.AsyncClient, delivery: DueDelivery
    ) -> tuple[int | None, str | None]:
        if delivery.endpoint_deleted:
            return None, "the endpoint was deleted"
        try:
            address = await check_url(delivery.url, self.allowed, self.settings.webhook_allow_http)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(delivery.body, delivery.secrets),
                "Moneta-Event-Id": str(delivery.event_id),
                "Moneta-Event-Type": delivery.event_type,
                "Moneta-Delivery-Id": str(delivery.id),
                "Moneta-Delivery-Attempt": str(delivery.attempts),
            }
            # Connect to the address just checked, not to a second DNS answer (rebinding);
            # Host and TLS name stay the endpoint's. Streamed and never read: a receiver's
            # answer cannot flood us.
            url, extensions = pinned(delivery.url, address)
            headers["Host"] = httpx.URL(delivery.url).netloc.decode()
            async with client.stream(
                "POST", url, content=delivery.body, headers=headers, extensions=extensions
            ) as answer:
                code = answer.status_code
            return code, None if 200 <= code < 300 else f"HTTP {code}"
        except UnsafeURLError as exc:
            return None, f"refused: {exc}"
        except httpx.TimeoutException:
            return None, f"timed out after {self.settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
