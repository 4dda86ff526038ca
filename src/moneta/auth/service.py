"""Issuing, verifying and revoking API keys. Verifications are cached briefly in-process,
and the key rows they need are shared through Redis when it is configured."""

from __future__ import annotations

import time
import uuid

from moneta.auth import keys, repository
from moneta.auth.schemas import ApiKeyCreated, Principal, RateLimit, Scope
from moneta.db.database import Connection, Database
from moneta.http.problems import MonetaError, not_found
from moneta.kv.keycache import SharedKeyCache

_CACHE_MAX_ENTRIES = 10_000


class KeyCache:
    """token -> (principal, expiry). Bounded; a revoked key lives at most `ttl_s` here."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        hit = self._entries.get(token)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def drop_key(self, key_id: uuid.UUID) -> None:
        for token, (principal, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                del self._entries[token]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= _CACHE_MAX_ENTRIES:
            self._entries.clear()
        self._entries[token] = (principal, time.monotonic() + self.ttl_s)


async def create_key(
    conn: Connection,
    scope: Scope,
    ledger_id: uuid.UUID | None,
    name: str | None,
    rate_limit: RateLimit | None = None,
) -> ApiKeyCreated:
    if ledger_id is not None and not await repository.ledger_exists(conn, ledger_id):
        raise not_found("ledger")
    new = keys.generate()
    limit = (rate_limit.per_second, rate_limit.burst) if rate_limit else None
    row = await repository.insert(
        conn, new.key_id, new.secret_hash, scope, ledger_id, name or "", limit
    )
    per_s, burst = row.pop("rate_limit_per_s"), row.pop("rate_limit_burst")
    stored = RateLimit(per_second=per_s, burst=burst) if per_s is not None else None
    return ApiKeyCreated(**row, rate_limit=stored, key=new.token)


def _unauthorized(detail: str) -> MonetaError:
    return MonetaError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    db: Database, cache: KeyCache, authorization: str | None, shared: SharedKeyCache | None = None
) -> Principal:
    if not authorization:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("send an API key as `Authorization: Bearer <key>`")
    cached = cache.get(token)
    if cached is not None:
        return cached
    parsed = keys.parse(token)
    if parsed is None:
        raise _unauthorized("the API key is not valid")
    key_id, secret = parsed
    row = await shared.get(key_id) if shared is not None else None
    if row is None:
        async with db.connection() as conn:
            row = await repository.find_active(conn, key_id)
        if row is not None and shared is not None:
            await shared.put(row)
    if row is None or not keys.matches(secret, row["secret_hash"]):
        raise _unauthorized("the API key is not valid")
    principal = Principal(
        key_id=row["id"],
        scope=Scope(row["scope"]),
        ledger_id=row["ledger_id"],
        rate_limit_per_s=row["rate_limit_per_s"],
        rate_limit_burst=row["rate_limit_burst"],
    )
    cache.put(token, principal)
    return principal


async def revoke_key(
    db: Database, principal: Principal, key_id: uuid.UUID, shared: SharedKeyCache | None
) -> None:
    async with db.connection() as conn:
        if not await repository.revoke(conn, key_id, principal.ledger_id):
            raise not_found("API key")
    if shared is not None:
        await shared.drop(key_id)
