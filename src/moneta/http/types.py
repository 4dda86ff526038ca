"""Field types shared by request schemas: exact amounts, bounded safe strings, metadata."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
)

# TigerBeetle's u128 is the bar: amounts are exact integers in [1, 2**128 - 1].
MAX_AMOUNT = 2**128 - 1
_DIGITS = re.compile(r"[0-9]{1,39}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _exact_integer(value: Any) -> int:
    """Accept a JSON integer or a string of digits; never a float, bool or exponent."""
    if isinstance(value, bool):
        raise ValueError("must be an integer number of minor units, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ValueError("must be an integer number of minor units (JSON integer or digit string)")


def _no_control_chars(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8: both
    # would otherwise surface as a database error instead of a 4xx.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _amount_schema(minimum: int) -> WithJsonSchema:
    """What the OpenAPI document promises: an integer in range, or its digits as a string
    (up to 38 digits, which always fit in 128 bits)."""
    digits = "^[1-9][0-9]{0,37}$" if minimum else "^(0|[1-9][0-9]{0,37})$"
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": minimum, "maximum": MAX_AMOUNT},
                {"type": "string", "pattern": digits},
            ],
            "description": "an exact integer of minor units",
        }
    )


Amount = Annotated[
    int, BeforeValidator(_exact_integer), Field(ge=1, le=MAX_AMOUNT), _amount_schema(1)
]
NonNegativeAmount = Annotated[
    int, BeforeValidator(_exact_integer), Field(ge=0, le=MAX_AMOUNT), _amount_schema(0)
]


def bounded_str(max_length: int, min_length: int = 0) -> Any:
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(_no_control_chars),
    ]


Name = bounded_str(200, 1)
Description = bounded_str(1000)
ExternalId = bounded_str(255, 1)


def _not_uuid(value: str) -> str:
    if _UUID.fullmatch(value):
        raise ValueError("must not look like a UUID (postings name accounts by id or code)")
    return value


AccountCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:@/+-]+$"),
    AfterValidator(_not_uuid),
]
AccountRef = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:@/+-]+$")
]
# ISO 4217 codes and custom assets (e.g. "USDC", "POINTS"); the ledger never converts.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{2,15}$")]

MetadataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_control_chars)
]
MetadataValue = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_control_chars)]
# Flat string -> string, like Stripe: filters compare exact strings and stay index-backed.
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=50)]


# Timestamps a ledger can store and compare exactly: PostgreSQL's range is wider, but its
# driver maps the extremes to +-infinity, and years before 1970 are no ledger's business.
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(9999, 12, 30, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        raise ValueError("must be between 1970-01-01 and 9999-12-30 (UTC)")
    return value


_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _iso_8601(value: Any) -> Any:
    # Lax parsing would read a number (or a numeric string) as Unix time; a ledger takes
    # only ISO 8601 date-times.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time with a time zone")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_in_range)]
