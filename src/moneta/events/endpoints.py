"""GET /v1/events: the same events the relay publishes, readable without a broker."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from moneta.auth.deps import ReadDep
from moneta.events import repository
from moneta.events.schemas import EventPage
from moneta.http.deps import DbDep
from moneta.http.openapi import PROBLEM_RESPONSES
from moneta.http.pagination import DEFAULT_LIMIT, Limit, cursor_values, page_response
from moneta.http.tenancy import target_ledger

router = APIRouter(prefix="/v1/events", tags=["events"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=EventPage, description="Oldest first; resume with `after`.")
async def list_events(
    principal: ReadDep,
    db: DbDep,
    ledger_id: uuid.UUID | None = None,
    after: Annotated[str | None, Query(max_length=512, description="a next_cursor")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    ledger = target_ledger(principal, ledger_id)
    position = cursor_values(after, int, int)
    start = (int(position[0]), int(position[1])) if position else None
    async with db.connection() as conn:
        rows = await repository.page(conn, ledger, start, limit)
    last = [rows[-1][0], rows[-1][1]] if rows else position
    # The stream has no end: the cursor always points at where to resume.
    return page_response([body for _, _, body in rows], last)
