"""Account request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from moneta.http.types import AccountCode, Currency, Metadata, NonNegativeAmount


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ledger_id: uuid.UUID | None = Field(
        default=None, description="required unless the API key is bound to one ledger"
    )
    code: AccountCode = Field(description="unique per ledger, e.g. `users:42:wallet`")
    currency: Currency
    normal_balance: Literal["debit", "credit"] = Field(
        default="credit",
        description="credit for wallets and liabilities, debit for cash and assets",
    )
    overdraft_limit: NonNegativeAmount | None = Field(
        default=0,
        description="how far available may go below zero; null = unlimited (system accounts)",
    )
    metadata: Metadata = {}


class Balance(BaseModel):
    currency: str
    posted: int
    available: int = Field(description="posted minus pending outflows")
    pending_debits: int
    pending_credits: int
    posted_debits: int
    posted_credits: int
    version: int


class AccountOut(BaseModel):
    id: uuid.UUID
    ledger_id: uuid.UUID
    code: str
    currency: str
    normal_balance: Literal["debit", "credit"]
    overdraft_limit: int | None
    metadata: dict[str, str]
    created_at: datetime
    balance: Balance


class AccountPage(BaseModel):
    data: list[AccountOut]
    next_cursor: str | None


class BalanceAsOf(BaseModel):
    account_id: uuid.UUID
    currency: str
    as_of: datetime
    posted: int = Field(description="posted balance from entries effective at or before as_of")


class EntryOut(BaseModel):
    id: int
    transaction_id: uuid.UUID
    account_id: uuid.UUID
    posting_index: int
    direction: Literal["debit", "credit"]
    amount: int
    pending: bool = Field(description="a reservation of a pending transaction")
    balance_after: int | None = Field(
        description="posted balance right after this entry, in commit order; pending "
        "entries carry the unchanged posted balance; null for accounts without an overdraft "
        "limit, which are updated without a lock (their balance is exact, per-entry running "
        "balances are not kept)"
    )
    effective_at: datetime
    created_at: datetime


class EntryPage(BaseModel):
    data: list[EntryOut]
    next_cursor: str | None
