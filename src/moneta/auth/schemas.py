"""Principals (who is calling) and the API-key request/response bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from moneta.http.types import Name


class Scope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


_RANK = {Scope.read: 0, Scope.write: 1, Scope.admin: 2}


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    scope: Scope
    # None: the key spans every ledger (an operator's key); else the one tenant it serves.
    ledger_id: uuid.UUID | None
    # None: the service-wide default rate limit applies.
    rate_limit_per_s: float | None = None
    rate_limit_burst: int | None = None

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]

    def sees(self, ledger_id: uuid.UUID) -> bool:
        return self.ledger_id is None or self.ledger_id == ledger_id


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_second: float = Field(gt=0, le=1_000_000, description="sustained requests per second")
    burst: int = Field(ge=1, le=1_000_000, strict=True, description="requests allowed at once")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope
    ledger_id: uuid.UUID | None = None
    name: Name | None = None
    rate_limit: RateLimit | None = Field(
        default=None, description="this key's limit (default: the service's)"
    )


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    scope: Scope
    ledger_id: uuid.UUID | None
    name: str
    created_at: datetime
    rate_limit: RateLimit | None
    key: str
