"""The request middleware (pure ASGI: no per-request task or body copy): request id in
and out, the latency histogram by route template, counts of money movements and problem
codes, and an error log line for every 5xx."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moneta.observability import context
from moneta.observability.metrics import Metrics

log = logging.getLogger("moneta.http")

# A caller's request id is echoed if it is plausible; otherwise we mint one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

# Accepted money movements by route template (a 2xx that is not an idempotent replay).
_KINDS = {
    "/v1/transactions": "transfer",
    "/v1/transactions/batch": "batch",
    "/v1/transactions/{transaction_id}/post": "post",
    "/v1/transactions/{transaction_id}/void": "void",
    "/v1/transactions/{transaction_id}/reverse": "reverse",
}


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        rid_token = context.request_id.set(rid)
        ledger_token = context.ledger_id.set(None)
        started = time.perf_counter()
        answer: dict[str, object] = {"status": 500, "problem": False, "replayed": False}
        body = bytearray()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = list(message.get("headers", []))
                names = {name.lower(): value for name, value in headers}
                answer["problem"] = names.get(b"content-type", b"").startswith(
                    b"application/problem+json"
                )
                answer["replayed"] = b"idempotent-replayed" in names
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and answer["problem"]:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, answer, bytes(body), time.perf_counter() - started)
            context.request_id.reset(rid_token)
            context.ledger_id.reset(ledger_token)

    def _record(self, scope: Scope, answer: dict[str, object], body: bytes, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        status = int(str(answer["status"]))
        method = scope.get("method", "")
        self.metrics.http.labels(template, method, str(status)).observe(elapsed)
        fresh = not answer["replayed"]
        if 200 <= status < 300 and fresh and method == "POST" and template in _KINDS:
            self.metrics.transactions.labels(_KINDS[template]).inc()
        if answer["problem"] and fresh:
            code = _problem_code(body)
            self.metrics.problems.labels(str(status), code).inc()
            if code == "insufficient_funds":
                self.metrics.insufficient_funds.inc()
            elif code == "rate_limited":
                self.metrics.rate_limited.inc()
        fields = {
            "method": method,
            "route": template,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        if status >= 500:
            log.error("request failed", extra=fields)
        elif self.access_log:
            log.info("request", extra=fields)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _problem_code(body: bytes) -> str:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return "unknown"
    # Our codes are short snake_case words; anything else is not a label value we want.
    return code if isinstance(code, str) and re.fullmatch(r"[a-z_]{1,64}", code) else "unknown"
