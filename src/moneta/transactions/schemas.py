"""Transaction request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from moneta.http.types import (
    AccountRef,
    Amount,
    Description,
    ExternalId,
    Metadata,
    NonNegativeAmount,
    Timestamp,
)

MAX_POSTINGS = 100
MAX_EXPIRES_IN_S = 30 * 24 * 3600

Status = Literal["pending", "posted", "voided", "expired"]


class PostingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    debit: AccountRef = Field(description="account id or code whose debits grow")
    credit: AccountRef = Field(description="account id or code whose credits grow")
    amount: Amount = Field(description="minor units, JSON integer or digit string")


MAX_BATCH_ITEMS = 10_000


class TransactionFields(BaseModel):
    """A transaction's own fields: a batch item, or a single create without ledger_id."""

    model_config = ConfigDict(extra="forbid")
    postings: list[PostingIn] = Field(min_length=1, max_length=MAX_POSTINGS)
    pending: StrictBool = Field(default=False, description="reserve now, post or void later")
    expires_in: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRES_IN_S, strict=True, description="seconds; pending only"
    )
    effective_at: Timestamp | None = Field(
        default=None, description="backdate the entries' effective time (default now)"
    )
    description: Description | None = None
    external_id: ExternalId | None = Field(default=None, description="unique per ledger")
    metadata: Metadata = {}

    @model_validator(mode="after")
    def _expiry_needs_pending(self) -> TransactionFields:
        if self.expires_in is not None and not self.pending:
            raise ValueError("expires_in applies to pending transactions only")
        return self


class TransactionCreate(TransactionFields):
    ledger_id: uuid.UUID | None = Field(
        default=None, description="required unless the API key is bound to one ledger"
    )


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ledger_id: uuid.UUID | None = Field(
        default=None, description="required unless the API key is bound to one ledger"
    )
    atomic: StrictBool = Field(
        default=True, description="all or none; false applies each item on its own"
    )
    transactions: list[TransactionFields] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class TransactionPost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Amount | None = Field(
        default=None, description="settle less than reserved (single-posting transactions)"
    )
    amounts: list[NonNegativeAmount] | None = Field(
        default=None, max_length=MAX_POSTINGS, description="one settled amount per posting"
    )

    @model_validator(mode="after")
    def _one_form(self) -> TransactionPost:
        if self.amount is not None and self.amounts is not None:
            raise ValueError("give amount or amounts, not both")
        return self


class TransactionReverse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: Description | None = None
    external_id: ExternalId | None = None
    metadata: Metadata = {}


class PostingOut(BaseModel):
    debit: uuid.UUID
    credit: uuid.UUID
    amount: int
    posted_amount: int | None = Field(description="settled amount; null while pending or voided")


class TransactionOut(BaseModel):
    id: uuid.UUID
    ledger_id: uuid.UUID
    status: Status
    postings: list[PostingOut]
    effective_at: datetime
    created_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    description: str | None
    external_id: str | None
    metadata: dict[str, str]
    reverses_id: uuid.UUID | None
    reversed_by_id: uuid.UUID | None


class TransactionPage(BaseModel):
    data: list[TransactionOut]
    next_cursor: str | None


class BatchResult(BaseModel):
    index: int
    status: int = Field(description="201, or the status the item alone would have had")
    transaction: TransactionOut | None = None
    error: dict[str, Any] | None = Field(default=None, description="problem+json of the item")


class BatchOut(BaseModel):
    atomic: bool
    succeeded: int
    failed: int
    results: list[BatchResult] = Field(description="one per item, in request order")
