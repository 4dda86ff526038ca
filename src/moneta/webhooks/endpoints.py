"""/v1/webhook-endpoints: subscriptions, secret rotation, the delivery log, redelivery."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from moneta.auth.deps import AdminDep, ReadDep
from moneta.auth.schemas import Principal
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
from moneta.http.tenancy import target_ledger, visible_ledger
from moneta.webhooks import repository
from moneta.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    SecretRotate,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
    WebhookEndpointPage,
)
from moneta.webhooks.ssrf import UnsafeURLError, check_url, parse_networks

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"], responses=PROBLEM_RESPONSES)


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def _visible(db: DbDep, principal: Principal, endpoint_id: str) -> tuple[uuid.UUID, str]:
    """The id and JSON of a live endpoint the key may see; anything else is a 404."""
    parsed = parse_id(endpoint_id)
    if parsed is not None:
        async with db.connection() as conn:
            found = await repository.get_endpoint(conn, parsed)
        if found is not None and principal.sees(found[0]):
            return parsed, found[1]
    raise not_found("webhook endpoint")


async def _endpoint(db: DbDep, principal: Principal, endpoint_id: str) -> uuid.UUID:
    return (await _visible(db, principal, endpoint_id))[0]


@router.post(
    "",
    status_code=201,
    response_model=WebhookEndpointCreated,
    description="Subscribe a URL to event types. The signing secret is returned only here.",
)
async def create_endpoint(
    body: WebhookEndpointCreate, request: Request, principal: AdminDep, db: DbDep
) -> Response:
    ledger = target_ledger(principal, body.ledger_id)
    settings = request.app.state.moneta.settings
    try:
        await check_url(
            body.url, parse_networks(settings.webhook_allowed_networks), settings.webhook_allow_http
        )
    except UnsafeURLError as exc:
        raise MonetaError(422, "unsafe_url", str(exc)) from None
    types: list[str] = sorted(set(body.event_types))
    async with db.connection() as conn:
        created = await repository.insert_endpoint(
            conn,
            ledger,
            body.url,
            ["*"] if "*" in types else types,
            body.description,
            _new_secret(),
        )
    if created is None:
        raise not_found("ledger")
    return json_response(created, 201)


@router.get("", response_model=WebhookEndpointPage)
async def list_endpoints(
    principal: ReadDep,
    db: DbDep,
    ledger_id: uuid.UUID | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    ledger = visible_ledger(principal, ledger_id)
    position = cursor_values(cursor, str)
    after = cursor_uuid(position[0]) if position else None
    async with db.connection() as conn:
        rows = await repository.page_endpoints(conn, ledger, after, limit + 1)
    return paginate(rows, limit)


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut)
async def get_endpoint(endpoint_id: str, principal: ReadDep, db: DbDep) -> Response:
    return json_response((await _visible(db, principal, endpoint_id))[1])


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
async def delete_endpoint(endpoint_id: str, principal: AdminDep, db: DbDep) -> Response:
    parsed = await _endpoint(db, principal, endpoint_id)
    async with db.connection() as conn:
        if not await repository.delete_endpoint(conn, parsed):
            raise not_found("webhook endpoint")
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookEndpointCreated,
    description="A new secret, returned only here; the old one keeps signing for `overlap_s`.",
)
async def rotate_secret(
    endpoint_id: str,
    request: Request,
    principal: AdminDep,
    db: DbDep,
    body: SecretRotate | None = None,
) -> Response:
    parsed = await _endpoint(db, principal, endpoint_id)
    overlap = body.overlap_s if body and body.overlap_s is not None else None
    if overlap is None:
        overlap = request.app.state.moneta.settings.webhook_secret_overlap_s
    async with db.connection() as conn:
        rotated = await repository.rotate_secret(conn, parsed, _new_secret(), overlap)
    if rotated is None:
        raise not_found("webhook endpoint")
    return json_response(rotated)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    description="The delivery log: each event offered to the endpoint, with every attempt.",
)
async def list_deliveries(
    endpoint_id: str,
    principal: ReadDep,
    db: DbDep,
    status: Annotated[DeliveryStatus | None, Query(description="e.g. dead")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    parsed = await _endpoint(db, principal, endpoint_id)
    position = cursor_values(cursor, str)
    after = cursor_uuid(position[0]) if position else None
    async with db.connection() as conn:
        rows = await repository.page_deliveries(conn, parsed, status, after, limit + 1)
    return paginate(rows, limit)


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    description="Send a delivery again now (a dead one included), with a fresh retry window.",
)
async def redeliver(
    endpoint_id: str, delivery_id: str, request: Request, principal: AdminDep, db: DbDep
) -> Response:
    parsed = await _endpoint(db, principal, endpoint_id)
    delivery = parse_id(delivery_id)
    if delivery is None:
        raise not_found("delivery")
    window = request.app.state.moneta.settings.webhook_retry_window_s
    async with db.transaction() as conn:
        outcome = await repository.redeliver(conn, parsed, delivery, window)
    if outcome is None:
        raise not_found("delivery")
    queued, body = outcome
    if not queued:
        raise MonetaError(409, "delivery_in_flight", "an attempt is running; retry when it ends")
    return json_response(body)
