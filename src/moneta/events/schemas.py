"""The event envelope, and one JSON Schema per event type (published in docs/events/)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from moneta.accounts.schemas import AccountOut
from moneta.ledgers.schemas import LedgerOut
from moneta.transactions.schemas import TransactionOut

# Every type the engine writes, with the API representation its `data` carries.
EVENT_TYPES: dict[str, type[BaseModel]] = {
    "ledger.created": LedgerOut,
    "account.created": AccountOut,
    "transaction.created": TransactionOut,  # created posted (reversals included)
    "transaction.pending": TransactionOut,  # created as a hold
    "transaction.posted": TransactionOut,  # a hold captured (in full or in part)
    "transaction.voided": TransactionOut,
    "transaction.expired": TransactionOut,
    "transaction.reversed": TransactionOut,  # the original; its reversal is created
}

EventType = Literal[
    "ledger.created",
    "account.created",
    "transaction.created",
    "transaction.pending",
    "transaction.posted",
    "transaction.voided",
    "transaction.expired",
    "transaction.reversed",
]


class BalanceAfter(BaseModel):
    account_id: uuid.UUID
    posted_after: int | None = Field(
        description="the account's posted balance right after this change; null for "
        "accounts without an overdraft limit (as their entries' balance_after)"
    )


class EventOut(BaseModel):
    id: uuid.UUID = Field(description="stable: a redelivery carries the same id")
    type: EventType
    ledger_id: uuid.UUID
    sequence: int = Field(description="1, 2, 3... per ledger in commit order, without gaps")
    created_at: datetime = Field(description="when the change was written")
    data: dict[str, Any] = Field(description="the API representation of the subject")
    balances: list[BalanceAfter] | None = Field(
        default=None,
        description="transaction events only: each account the change booked entries on",
    )


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None = Field(description="pass as `after` to continue; never skips")


def event_json_schema(event_type: str) -> dict[str, Any]:
    """The envelope with `type` fixed and `data` the subject's API schema."""
    model = EVENT_TYPES[event_type]
    envelope = EventOut.model_json_schema()
    data = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**envelope.pop("$defs", {}), **data.pop("$defs", {})}
    envelope["title"] = event_type
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    envelope["properties"]["type"] = {"const": event_type, "title": "Type", "type": "string"}
    envelope["properties"]["data"] = data
    if event_type.startswith("transaction."):
        envelope["required"] = [*envelope["required"], "balances"]
    else:
        del envelope["properties"]["balances"]
    if defs:
        envelope["$defs"] = defs
    return envelope


def write_schemas(directory: Path) -> list[Path]:
    """`python -m moneta.events.schemas docs/events` regenerates the published files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in EVENT_TYPES:
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(event_json_schema(event_type), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    import sys

    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/events")):
        print(path)
