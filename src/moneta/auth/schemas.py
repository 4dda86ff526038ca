"""Principals (who is calling) and the API-key request/response bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

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

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]

    def sees(self, ledger_id: uuid.UUID) -> bool:
        return self.ledger_id is None or self.ledger_id == ledger_id


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope
    ledger_id: uuid.UUID | None = None
    name: Name | None = None


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    scope: Scope
    ledger_id: uuid.UUID | None
    name: str
    created_at: datetime
    key: str
