"""Webhook endpoint and delivery bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from moneta.events.schemas import EventType
from moneta.http.types import Description

WebhookURL = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
DeliveryStatus = Literal["pending", "succeeded", "dead"]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ledger_id: uuid.UUID | None = Field(default=None, description="default: the key's ledger")
    url: WebhookURL = Field(description="https:// URL on a public address")
    event_types: list[EventType | Literal["*"]] = Field(
        min_length=1, max_length=20, description='event types to send, or ["*"] for all'
    )
    description: Description | None = None


class WebhookEndpointOut(BaseModel):
    id: uuid.UUID
    ledger_id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        description="while set and in the future, the rotated-out secret also signs"
    )


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="signs deliveries; shown only in this response")


class WebhookEndpointPage(BaseModel):
    data: list[WebhookEndpointOut]
    next_cursor: str | None


class SecretRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_s: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86_400,
        strict=True,
        description="seconds the old secret keeps signing (default 24 h); 0 retires it now",
    )


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None = Field(description="the receiver's answer; null: no answer")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    event_sequence: int
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="null once succeeded or dead")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    log: list[AttemptOut] = Field(description="every attempt, oldest first")


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None
