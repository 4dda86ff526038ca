"""Ids in paths and cursors: anything that is not a UUID names nothing."""

from __future__ import annotations

import uuid

from moneta.http.problems import MonetaError


def parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def cursor_uuid(value: str) -> uuid.UUID:
    parsed = parse_id(value)
    if parsed is None:
        raise MonetaError(400, "invalid_cursor", "the cursor is not one this API issued")
    return parsed


def metadata_filter(query: dict[str, str]) -> dict[str, str]:
    """`?metadata.K=V` query parameters as a containment filter {K: V}."""
    found = {k.removeprefix("metadata."): v for k, v in query.items() if k.startswith("metadata.")}
    if len(found) > 20 or any(
        not k or len(k) > 64 or len(v) > 500 or "\x00" in k + v for k, v in found.items()
    ):
        raise MonetaError(422, "validation_error", "metadata filters: at most 20, keys <= 64 chars")
    return found
