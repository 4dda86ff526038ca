"""An ASGI middleware guarding request bodies: JSON only (415), bounded in size (413)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moneta.http.problems import MonetaError


class BodyLimitMiddleware:
    """Bodies are limited to `max_body_bytes`, or `max_batch_body_bytes` on batch routes."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_batch_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_batch_body_bytes = max_batch_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.max_batch_body_bytes
            if str(scope.get("path", "")).endswith("/batch")
            else self.max_body_bytes
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._reject(limit, scope, receive, send)
            return
        has_body = (declared is not None and declared != b"0") or b"transfer-encoding" in headers
        kind = headers.get(b"content-type", b"").lower()
        # The API speaks JSON; the console's HTML forms post urlencoded bodies.
        form = kind.startswith(b"application/x-www-form-urlencoded") and str(
            scope.get("path", "")
        ).startswith("/console/")
        if has_body and b"json" not in kind and not form:
            problem = MonetaError(
                415, "unsupported_media_type", "send the body as Content-Type: application/json"
            )
            await problem.response()(scope, receive, send)
            return
        if declared is not None:
            # A declared length is enforced above; the server will not read past it.
            await self.app(scope, receive, send)
            return
        # Chunked: read the body here, so the limit answers 413 before the app sees it.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await self._reject(limit, scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        problem = MonetaError(
            413, "payload_too_large", f"request bodies are limited to {limit} bytes"
        )
        await problem.response()(scope, receive, send)
