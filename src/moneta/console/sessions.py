"""Console sessions, kept server-side in Redis: the browser holds only a random id in an
HttpOnly, Secure, SameSite=Strict cookie; Redis keys are the id's hash, so a Redis dump
cannot be replayed as cookies. Sessions slide: each use extends them to the idle limit."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import asdict, dataclass

from moneta.kv.client import RedisState, Unavailable

COOKIE = "moneta_console"


class SessionsUnavailableError(RuntimeError):
    """Redis is down or not configured: the console cannot keep anyone signed in."""


@dataclass(frozen=True)
class Session:
    key_id: str  # the API key the operator signed in with; revoking it ends the session
    scope: str
    ledger_id: str | None
    csrf: str  # echoed by every form the console serves


class SessionStore:
    def __init__(self, redis: RedisState, idle_s: int) -> None:
        self.redis = redis
        self.idle_s = idle_s

    @staticmethod
    def _key(session_id: str) -> str:
        return "moneta:session:" + hashlib.sha256(session_id.encode()).hexdigest()

    async def create(self, key_id: uuid.UUID, scope: str, ledger_id: uuid.UUID | None) -> str:
        session_id = secrets.token_urlsafe(32)
        session = Session(
            str(key_id), scope, str(ledger_id) if ledger_id else None, secrets.token_urlsafe(24)
        )
        stored = await self.redis.run(
            lambda r: r.set(self._key(session_id), json.dumps(asdict(session)), ex=self.idle_s)
        )
        if isinstance(stored, Unavailable):
            raise SessionsUnavailableError
        return session_id

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        raw = await self.redis.run(lambda r: r.getex(self._key(session_id), ex=self.idle_s))
        if isinstance(raw, Unavailable):
            raise SessionsUnavailableError
        return Session(**json.loads(raw)) if raw else None

    async def delete(self, session_id: str) -> None:
        await self.redis.run(lambda r: r.delete(self._key(session_id)))
