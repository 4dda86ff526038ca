"""Opaque cursors and the `{data, next_cursor}` list envelope."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import Query
from starlette.responses import Response

from moneta.http.problems import MonetaError

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="opaque cursor from `next_cursor` (anything else: 400 invalid_cursor)",
    ),
]


def encode_cursor(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        raise MonetaError(400, "invalid_cursor", "the cursor is not one this API issued") from None
    if not isinstance(position, list) or not position:
        raise MonetaError(400, "invalid_cursor", "the cursor is not one this API issued")
    return position


def page_response(rows_json: list[str], next_position: list[Any] | None) -> Response:
    """Rows arrive as JSON text built by PostgreSQL; they are spliced, never re-encoded."""
    cursor = json.dumps(encode_cursor(next_position) if next_position is not None else None)
    body = '{"data":[' + ",".join(rows_json) + '],"next_cursor":' + cursor + "}"
    return Response(body.encode(), media_type="application/json")


def paginate(rows: list[tuple[Any, str]], limit: int) -> Response:
    """Rows are (position, JSON) pairs, one more than `limit` if a next page exists; the
    position of the last row shown becomes the cursor."""
    shown = rows[:limit]
    following = None
    if len(rows) > limit:
        last = shown[-1][0]
        following = [last if isinstance(last, int) else str(last)]
    return page_response([body for _, body in shown], following)


def json_response(body: str | bytes, status_code: int = 200) -> Response:
    content = body.encode() if isinstance(body, str) else body
    return Response(content, status_code, media_type="application/json")


def cursor_values(cursor: str | None, *kinds: type) -> list[Any] | None:
    """Decode a cursor and check each position value's type, so a forged cursor is a 400."""
    position = decode_cursor(cursor)
    if position is None:
        return None
    if len(position) != len(kinds) or not all(
        isinstance(value, kind)
        and not isinstance(value, bool)
        # Our integer positions are database bigints: anything else was not issued here.
        and (not isinstance(value, int) or 0 <= value < 2**63)
        for value, kind in zip(position, kinds, strict=True)
    ):
        raise MonetaError(400, "invalid_cursor", "the cursor is not one this API issued")
    return position
