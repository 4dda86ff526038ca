"""Event envelope."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EventOut(BaseModel):
    id: uuid.UUID = Field(description="stable across redeliveries")
    type: str
    ledger_id: uuid.UUID
    sequence: int = Field(description="increases with every event; gaps are possible")
    created_at: datetime
    data: dict[str, Any] = Field(description="the API representation of the subject")


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None = Field(description="pass as `after` to continue; never skips")
