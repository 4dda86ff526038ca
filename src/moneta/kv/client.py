"""One Redis connection pool behind a circuit breaker: after a failure Redis is left
alone for a moment instead of costing every request a connect time-out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Unavailable:
    """What `RedisState.run` returns when Redis cannot answer (a cache miss is None)."""


UNAVAILABLE = Unavailable()


class RedisState:
    def __init__(self, url: str | None, timeout_s: float, pause_s: float = 1.0) -> None:
        self.client: Redis | None = (
            Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
            if url
            else None
        )
        self.timeout_s = timeout_s
        self.pause_s = pause_s
        self._down_until = 0.0
        self.last_error: str | None = None

    @property
    def configured(self) -> bool:
        return self.client is not None

    @property
    def healthy(self) -> bool:
        return self.client is not None and time.monotonic() >= self._down_until

    async def run(self, operation: Callable[[Redis], Awaitable[T]]) -> T | Unavailable:
        if self.client is None or not self.healthy:
            return UNAVAILABLE
        try:
            return await asyncio.wait_for(operation(self.client), self.timeout_s * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            if self.last_error is None:
                log.warning("redis unavailable (%s); carrying on without it", exc)
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._down_until = time.monotonic() + self.pause_s
            return UNAVAILABLE

    async def ping(self) -> bool:
        """For /readyz: tries even while the breaker is open, and closes it on success."""
        if self.client is None:
            return False
        try:
            await asyncio.wait_for(self.client.ping(), self.timeout_s * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._down_until = time.monotonic() + self.pause_s
            return False
        if self.last_error is not None:
            log.info("redis is back")
        self.last_error = None
        self._down_until = 0.0
        return True

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
