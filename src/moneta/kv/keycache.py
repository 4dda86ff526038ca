"""Verified API keys, shared by every api replica through Redis so a busy fleet does not
read `api_keys` on every request. Only what verification needs is kept (the secret's
hash, never the secret). Revoking a key deletes its entry; the in-process cache in front
of this one keeps a revoked key at most `MONETA_AUTH_CACHE_TTL_S` longer."""

from __future__ import annotations

import json
import uuid
from typing import Any

from moneta.kv.client import RedisState, Unavailable

TTL_S = 60  # also bounds a revocation that happened while Redis was unreachable


class SharedKeyCache:
    def __init__(self, redis: RedisState) -> None:
        self.redis = redis

    @staticmethod
    def _key(key_id: uuid.UUID) -> str:
        return f"moneta:apikey:{key_id}"

    async def get(self, key_id: uuid.UUID) -> dict[str, Any] | None:
        raw = await self.redis.run(lambda r: r.get(self._key(key_id)))
        if raw is None or isinstance(raw, Unavailable):
            return None
        row: dict[str, Any] = json.loads(raw)
        row["secret_hash"] = bytes.fromhex(row["secret_hash"])
        row["id"] = uuid.UUID(row["id"])
        row["ledger_id"] = uuid.UUID(row["ledger_id"]) if row["ledger_id"] else None
        return row

    async def put(self, row: dict[str, Any]) -> None:
        value = json.dumps({**row, "secret_hash": row["secret_hash"].hex()}, default=str)
        await self.redis.run(lambda r: r.set(self._key(row["id"]), value, ex=TTL_S))

    async def drop(self, key_id: uuid.UUID) -> None:
        await self.redis.run(lambda r: r.delete(self._key(key_id)))
