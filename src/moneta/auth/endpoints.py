"""/v1/api-keys: an admin issues keys (shown once), optionally bound to one ledger."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from moneta.auth import service
from moneta.auth.deps import AdminDep, local_key_cache
from moneta.auth.schemas import ApiKeyCreate, ApiKeyCreated
from moneta.http.deps import DbDep, StateDep
from moneta.http.ids import parse_id
from moneta.http.openapi import PROBLEM_RESPONSES
from moneta.http.pagination import json_response
from moneta.http.problems import not_found
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
        created = await service.create_key(conn, body.scope, ledger_id, body.name, body.rate_limit)
    return json_response(created.model_dump_json(), 201)


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    description="Revoke a key: refused everywhere within `MONETA_AUTH_CACHE_TTL_S` (5 s).",
)
async def revoke_api_key(key_id: str, principal: AdminDep, state: StateDep) -> Response:
    parsed = parse_id(key_id)
    if parsed is None:
        raise not_found("API key")
    await service.revoke_key(state.db, principal, parsed, state.key_cache)
    local_key_cache(state).drop_key(parsed)
    return Response(status_code=204)
