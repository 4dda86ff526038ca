"""Ledger request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from moneta.http.types import Metadata, Name


class LedgerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    metadata: Metadata = {}


class LedgerOut(BaseModel):
    id: uuid.UUID
    name: str
    metadata: dict[str, str]
    created_at: datetime


class LedgerPage(BaseModel):
    data: list[LedgerOut]
    next_cursor: str | None
