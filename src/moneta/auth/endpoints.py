"""/v1/api-keys: an admin issues keys (shown once), optionally bound to one ledger."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from moneta.auth import service
from moneta.auth.deps import AdminDep
from moneta.auth.schemas import ApiKeyCreate, ApiKeyCreated
from moneta.http.deps import DbDep
from moneta.http.openapi import PROBLEM_RESPONSES
from moneta.http.pagination import json_response
from moneta.http.tenancy import target_ledger

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    description="The key is in this response only. An Idempotency-Key header is ignored "
    "here: replaying would mean storing the secret, and a spare key is harmless.",
)
async def create_api_key(body: ApiKeyCreate, principal: AdminDep, db: DbDep) -> Response:
    # A ledger-bound admin may only issue keys for its own ledger.
    bound = principal.ledger_id is not None or body.ledger_id is not None
    ledger_id = target_ledger(principal, body.ledger_id) if bound else None
    async with db.connection() as conn:
        created = await service.create_key(conn, body.scope, ledger_id, body.name)
    return json_response(created.model_dump_json(), 201)
