"""Runs a write at most once per (API key, Idempotency-Key).

The key row is inserted in the same database transaction as the effect: a request that
dies mid-way leaves no key behind, and its retry executes once. A concurrent request with
the same key blocks on the row's unique index until the first commits, then replays it
(or gets 409 `idempotency_key_in_flight` after the lock timeout).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
from fastapi import Header, Request
from pydantic import BaseModel
from starlette.responses import Response

from moneta.auth.schemas import Principal
from moneta.db.database import Connection, Database
from moneta.http.problems import PROBLEM_JSON, MonetaError, from_postgres
from moneta.idempotency import repository

# Every POST declares the header the same way.
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="<= 255 printable ASCII characters")
]

# An action runs one write on the connection it is given and returns the JSON body.
Action = Callable[[Connection], Awaitable[str]]

MAX_KEY_LENGTH = 255


def validate_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise MonetaError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
        )
    return key


def fingerprint(method: str, path: str, canonical_body: str) -> bytes:
    return hashlib.sha256(f"{method} {path}\n{canonical_body}".encode()).digest()


async def execute(
    request: Request,
    db: Database,
    principal: Principal,
    key: str | None,
    body: BaseModel | None,
    success_status: int,
    action: Action,
) -> Response:
    """Run `action` once per (API key, Idempotency-Key); the body is the request's identity."""
    key = validate_key(key)
    if key is None:
        async with db.connection() as conn:
            answer = await action(conn)
        return Response(answer.encode(), success_status, media_type="application/json")

    # The validated body, re-serialized: "100" and 100 are the same request.
    canonical = body.model_dump_json() if body is not None else ""
    request_fingerprint = fingerprint(request.method, request.url.path, canonical)
    async with db.connection() as conn, conn.transaction():
        try:
            claimed = await repository.claim(conn, principal.key_id, key, request_fingerprint)
        except asyncpg.LockNotAvailableError:
            raise MonetaError(
                409, "idempotency_key_in_flight", "a request with this Idempotency-Key is in flight"
            ) from None
        if not claimed:
            return await _replay(conn, principal, key, request_fingerprint)
        status, content, media_type = await _run_in_savepoint(conn, success_status, action)
        await repository.store(conn, principal.key_id, key, status, content)
    return Response(content, status, media_type=media_type)


async def _run_in_savepoint(
    conn: Connection, success_status: int, action: Action
) -> tuple[int, bytes, str]:
    """A business-rule failure is an answer too: it is stored and replayed like a success,
    while the effect it refused is rolled back to the savepoint."""
    try:
        async with conn.transaction():
            body = await action(conn)
        return success_status, body.encode(), "application/json"
    except MonetaError as error:
        if error.status >= 500:
            raise
        return error.status, error.body(), PROBLEM_JSON
    except asyncpg.PostgresError as db_error:
        problem = from_postgres(db_error)
        if problem is None or problem.status >= 500 or problem.code == "conflict_retry":
            raise
        return problem.status, problem.body(), PROBLEM_JSON


async def _replay(
    conn: Connection, principal: Principal, key: str, request_fingerprint: bytes
) -> Response:
    stored = await repository.find(conn, principal.key_id, key)
    if stored is None or stored["status_code"] is None:
        raise MonetaError(
            409, "idempotency_key_in_flight", "a request with this Idempotency-Key is in flight"
        )
    if bytes(stored["fingerprint"]) != request_fingerprint:
        raise MonetaError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
    status = int(stored["status_code"])
    media_type = "application/json" if status < 400 else PROBLEM_JSON
    return Response(
        bytes(stored["response"]),
        status,
        {"Idempotent-Replayed": "true"},
        media_type=media_type,
    )
