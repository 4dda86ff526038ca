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


@router.get(
    "",
    response_model=EventPage,
    description=(
        "The ledger's events in commit order, oldest first; resume with `after`. An event is "
        "listed once the sequencer has numbered it, usually within 100 ms of its commit."
    ),
)
async def list_events(
    principal: ReadDep,
    db: DbDep,
    ledger_id: uuid.UUID | None = None,
    after: Annotated[str | None, Query(max_length=512, description="a next_cursor")] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    ledger = target_ledger(principal, ledger_id)
    position = cursor_values(after, int)
    start = int(position[0]) if position else 0
    async with db.connection() as conn:
        events = await repository.batch(conn, ledger, start, limit)
    # The stream has no end: the cursor always points at where to resume.
    last = events[-1].sequence if events else start
    return page_response([event.body.decode() for event in events], [last])
