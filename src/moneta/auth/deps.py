"""`AuthDep` / `ReadDep` / `WriteDep` / `AdminDep`: who is calling, and may they?"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from moneta.auth.schemas import Principal, Scope
from moneta.auth.service import KeyCache, authenticate
from moneta.http.deps import AppState, app_state
from moneta.http.problems import MonetaError
from moneta.observability import context


def local_key_cache(state: AppState) -> KeyCache:
    """This process's short-lived cache of verified keys (created on first use)."""
    cache = state.caches.get("auth")
    if not isinstance(cache, KeyCache):
        cache = state.caches["auth"] = KeyCache(state.settings.auth_cache_ttl_s)
    return cache


async def get_principal(request: Request) -> Principal:
    state = app_state(request)
    cache = local_key_cache(state)
    principal = await authenticate(
        state.db, cache, request.headers.get("authorization"), state.key_cache
    )
    if principal.ledger_id is not None:
        context.ledger_id.set(str(principal.ledger_id))  # for this request's log lines
    decision = await state.limiter.check(principal)  # raises 429 when the bucket is empty
    if decision is not None:
        request.state.ratelimit = decision  # RateLimitHeaders puts it on the answer
    return principal


def require(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.allows(scope):
            raise MonetaError(
                403, "insufficient_scope", f"this needs a key with the {scope.value} scope"
            )
        return principal

    return check


ReadDep = Annotated[Principal, Depends(require(Scope.read))]
WriteDep = Annotated[Principal, Depends(require(Scope.write))]
AdminDep = Annotated[Principal, Depends(require(Scope.admin))]
