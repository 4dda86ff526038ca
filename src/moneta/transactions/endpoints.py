"""/v1/transactions: create, read, list, post, void, reverse."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request
from starlette.responses import Response

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
from moneta.idempotency import service as idempotency
from moneta.idempotency.service import IdempotencyKey
from moneta.transactions import repository, service
from moneta.transactions.schemas import (
    BatchCreate,
    BatchOut,
    Status,
    TransactionCreate,
    TransactionOut,
    TransactionPage,
    TransactionPost,
    TransactionReverse,
)

router = APIRouter(prefix="/v1/transactions", tags=["transactions"], responses=PROBLEM_RESPONSES)


@router.post("", status_code=201, response_model=TransactionOut)
async def create_transaction(
    body: TransactionCreate,
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


@router.post(
    "/batch",
    response_model=BatchOut,
    status_code=201,
    responses={200: {"model": BatchOut, "description": "atomic=false: per-item results"}},
    description="Up to 10,000 transactions in one database statement, applied in order "
    "(an item may fail for funds an earlier item spent). `atomic: true` (default): all or "
    "none, 201, or the first failure as a problem with its `index`. `atomic: false`: 200 "
    "with one result per item, each created or failed on its own.",
)
async def create_batch(
    body: BatchCreate,
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
        201 if body.atomic else 200,
        lambda conn: service.create_batch(conn, ledger_id, body),
    )


@router.get("", response_model=TransactionPage, description="Newest first.")
async def list_transactions(
    request: Request,
    principal: ReadDep,
    db: DbDep,
    ledger_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    status: Status | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    ledger = visible_ledger(principal, ledger_id)
    metadata = metadata_filter(dict(request.query_params))
    position = cursor_values(cursor, str)
    before = cursor_uuid(position[0]) if position else None
    async with db.connection() as conn:
        rows = await repository.page(conn, ledger, account_id, status, metadata, before, limit + 1)
    return paginate(rows, limit)


@router.get("/{transaction_id}", response_model=TransactionOut)
async def get_transaction(transaction_id: str, principal: ReadDep, db: DbDep) -> Response:
    async with db.connection() as conn:
        return json_response(await service.get(conn, principal, parse_id(transaction_id)))


@router.post("/{transaction_id}/post", response_model=TransactionOut)
async def post_transaction(
    transaction_id: str,
    request: Request,
    principal: WriteDep,
    db: DbDep,
    body: Annotated[TransactionPost | None, Body()] = None,
    key: IdempotencyKey = None,
) -> Response:
    """Settle a pending transaction, in full or for less (the rest is released)."""
    tx_id = parse_id(transaction_id)
    return await idempotency.execute(
        request,
        db,
        principal,
        key,
        body,
        200,
        lambda conn: service.post(conn, principal, tx_id, body),
    )


@router.post("/{transaction_id}/void", response_model=TransactionOut)
async def void_transaction(
    transaction_id: str,
    request: Request,
    principal: WriteDep,
    db: DbDep,
    key: IdempotencyKey = None,
) -> Response:
    """Release a pending transaction's reservation."""
    tx_id = parse_id(transaction_id)
    return await idempotency.execute(
        request,
        db,
        principal,
        key,
        None,
        200,
        lambda conn: service.void(conn, principal, tx_id),
    )


@router.post("/{transaction_id}/reverse", status_code=201, response_model=TransactionOut)
async def reverse_transaction(
    transaction_id: str,
    request: Request,
    principal: WriteDep,
    db: DbDep,
    body: Annotated[TransactionReverse | None, Body()] = None,
    key: IdempotencyKey = None,
) -> Response:
    """Create a new posted transaction that undoes this one (at most once)."""
    tx_id = parse_id(transaction_id)
    return await idempotency.execute(
        request,
        db,
        principal,
        key,
        body,
        201,
        lambda conn: service.reverse(conn, principal, tx_id, body),
    )
