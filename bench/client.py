"""A thin aiohttp client for Moneta's REST API: keep-alive connections, JSON in, status
and raw body out (decoding is left to callers that need the body)."""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

import aiohttp

JSON_HEADERS = {"Content-Type": "application/json"}


class ApiError(RuntimeError):
    def __init__(self, what: str, status: int, body: bytes) -> None:
        super().__init__(f"{what}: HTTP {status} {body[:500]!r}")
        self.status = status


class Client:
    """Use as `async with Client(url, key, connections) as api:`."""

    def __init__(self, base_url: str, key: str, connections: int = 32) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=self.connections)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=aiohttp.ClientTimeout(total=120),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use Client as an async context manager"
        return self._session

    async def send(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, bytes]:
        headers: dict[str, str] = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers.update(JSON_HEADERS)
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        async with self.session.request(
            method, self.base_url + path, data=data, headers=headers
        ) as response:
            return response.status, await response.read()

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """Send and decode; anything but `expect` raises ApiError."""
        status, raw = await self.send(method, path, body)
        if status != expect:
            raise ApiError(f"{method} {path}", status, raw)
        return json.loads(raw)


def problem_code(raw: bytes) -> str:
    """The stable `code` of a problem+json body, or '?' if there is none."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return "?"
    return str(doc.get("code", "?")) if isinstance(doc, dict) else "?"
