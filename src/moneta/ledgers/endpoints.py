"""/v1/ledgers: create (operator keys only), list and read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from moneta.auth.deps import AdminDep, ReadDep
from moneta.http.deps import DbDep
from moneta.http.ids import cursor_uuid, parse_id
from moneta.http.openapi import PROBLEM_RESPONSES
from moneta.http.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    cursor_values,
    json_response,
    paginate,
)
from moneta.http.problems import MonetaError, not_found
from moneta.idempotency import service as idempotency
from moneta.idempotency.service import IdempotencyKey
from moneta.ledgers import repository
from moneta.ledgers.schemas import LedgerCreate, LedgerOut, LedgerPage

router = APIRouter(prefix="/v1/ledgers", tags=["ledgers"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=201, response_model=LedgerOut)
async def create_ledger(
    body: LedgerCreate, request: Request, principal: AdminDep, db: DbDep, key: IdempotencyKey = None
) -> Response:
    if principal.ledger_id is not None:
        raise MonetaError(403, "insufficient_scope", "a ledger-bound key cannot create ledgers")
    return await idempotency.execute(
        request,
        db,
        principal,
        key,
        body,
        201,
        lambda conn: repository.insert(conn, body.name, body.metadata),
    )


@router.get("", response_model=LedgerPage)
async def list_ledgers(
    principal: ReadDep, db: DbDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response:
    position = cursor_values(cursor, str)
    after = cursor_uuid(position[0]) if position else None
    async with db.connection() as conn:
        rows = await repository.page(conn, principal.ledger_id, after, limit + 1)
    return paginate(rows, limit)


@router.get("/{ledger_id}", response_model=LedgerOut)
async def get_ledger(ledger_id: str, principal: ReadDep, db: DbDep) -> Response:
    parsed = parse_id(ledger_id)
    if parsed is None or not principal.sees(parsed):
        raise not_found("ledger")
    async with db.connection() as conn:
        body = await repository.get(conn, parsed)
    if body is None:
        raise not_found("ledger")
    return json_response(body)
