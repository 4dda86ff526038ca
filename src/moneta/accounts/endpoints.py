"""/v1/accounts: create, list, read, point-in-time balance, history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from moneta.accounts import repository, service
from moneta.accounts.schemas import AccountCreate, AccountOut, AccountPage, BalanceAsOf, EntryPage
from moneta.auth.deps import ReadDep, WriteDep
from moneta.http.deps import DbDep
from moneta.http.ids import cursor_uuid, metadata_filter, parse_id
from moneta.http.openapi import PROBLEM_RESPONSES
from moneta.http.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    cursor_values,
    json_response,
    paginate,
)
from moneta.http.tenancy import target_ledger, visible_ledger
from moneta.http.types import AccountRef, Timestamp
from moneta.idempotency import service as idempotency
from moneta.idempotency.service import IdempotencyKey

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=201, response_model=AccountOut)
async def create_account(
    body: AccountCreate,
    request: Request,
    principal: WriteDep,
    db: DbDep,
    key: IdempotencyKey = None,
) -> Response:
    ledger_id = target_ledger(principal, body.ledger_id)
    return await idempotency.execute(
        request,
        db,
        principal,
        key,
        body,
        201,
        lambda conn: service.create(conn, ledger_id, body),
    )


@router.get(
    "",
    response_model=AccountPage,
    description="Filter by `ledger_id`, `code`, and metadata with `metadata.KEY=VALUE`.",
)
async def list_accounts(
    request: Request,
    principal: ReadDep,
    db: DbDep,
    ledger_id: uuid.UUID | None = None,
    code: Annotated[AccountRef | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    ledger = visible_ledger(principal, ledger_id)
    metadata = metadata_filter(dict(request.query_params))
    position = cursor_values(cursor, str)
    after = cursor_uuid(position[0]) if position else None
    async with db.connection() as conn:
        rows = await repository.page(conn, ledger, code, metadata, after, limit + 1)
    return paginate(rows, limit)


@router.get("/{account_id}", response_model=AccountOut)
async def get_account(account_id: str, principal: ReadDep, db: DbDep) -> Response:
    async with db.connection() as conn:
        return json_response(await service.get(conn, principal, parse_id(account_id)))


@router.get("/{account_id}/balance", response_model=BalanceAsOf)
async def get_balance_as_of(
    account_id: str,
    principal: ReadDep,
    db: DbDep,
    as_of: Annotated[
        Timestamp | None, Query(description="ISO 8601 with a time zone; default now")
    ] = None,
) -> Response:
    when = as_of or datetime.now(UTC)
    async with db.connection() as conn:
        body = await service.balance_as_of(conn, principal, parse_id(account_id), when)
    return json_response(body)


@router.get("/{account_id}/entries", response_model=EntryPage)
async def list_entries(
    account_id: str,
    principal: ReadDep,
    db: DbDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    position = cursor_values(cursor, int)
    before = int(position[0]) if position else None
    async with db.connection() as conn:
        rows = await service.entries(conn, principal, parse_id(account_id), before, limit + 1)
    return paginate(rows, limit)
