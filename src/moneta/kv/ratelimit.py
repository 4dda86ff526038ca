"""Per-API-key rate limits: a token bucket in Redis (one atomic script per request, on
Redis's clock), answered with the IETF RateLimit headers and, when empty, a 429 with
Retry-After."""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moneta.auth.schemas import Principal
from moneta.http.problems import MonetaError
from moneta.kv.client import RedisState, Unavailable

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst. Returns {allowed, tokens left (x1000),
# ms until one token}.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end
return {allowed, math.floor(tokens * 1000), wait}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    wait_s: float  # until the next token
    rate: float
    burst: int

    def headers(self) -> dict[str, str]:
        window = max(1, math.ceil(self.burst / self.rate))
        reset = max(0, math.ceil(self.wait_s))
        headers = {
            "RateLimit-Policy": f'"key";q={self.burst};w={window}',
            "RateLimit": f'"key";r={self.remaining};t={reset}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, reset))
        return headers


class RateLimiter:
    def __init__(self, redis: RedisState, per_s: float, burst: int, fail_open: bool) -> None:
        self.redis = redis
        self.per_s = per_s
        self.burst = burst
        self.fail_open = fail_open

    @property
    def enabled(self) -> bool:
        return self.redis.configured

    async def check(self, principal: Principal) -> Decision | None:
        """Raises 429 when the key's bucket is empty; None when not limiting."""
        if not self.enabled:
            return None
        rate = principal.rate_limit_per_s or self.per_s
        burst = principal.rate_limit_burst or self.burst
        key = f"moneta:rl:{principal.key_id}"
        answer = await self.redis.run(
            lambda r: r.eval(_BUCKET_SCRIPT, 1, key, str(rate), str(burst))
        )
        if isinstance(answer, Unavailable):
            if self.fail_open:
                return None
            raise MonetaError(503, "rate_limiter_unavailable", "retry shortly")
        allowed, left, wait_ms = (int(v) for v in answer)
        decision = Decision(bool(allowed), left // 1000, wait_ms / 1000, rate, burst)
        if not decision.allowed:
            raise MonetaError(
                429,
                "rate_limited",
                "too many requests for this API key",
                headers=decision.headers(),
            )
        return decision


class RateLimitHeaders:
    """Adds the RateLimit headers of the request's decision (left in request.state by the
    auth dependency) to the answer: endpoints return Response objects of their own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("ratelimit")
                if isinstance(decision, Decision):
                    extra = [
                        (k.lower().encode(), v.encode()) for k, v in decision.headers().items()
                    ]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_wrapper)
