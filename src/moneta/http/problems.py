"""One error base class carrying an HTTP status and a stable code, rendered as RFC 9457."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class MonetaError(Exception):
    """A failure the client can act on. `code` is part of the API contract: never rename."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> bytes:
        problem: dict[str, Any] = {
            "type": f"https://moneta.dev/problems/{self.code}",
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }
        return json.dumps(problem).encode()

    def response(self) -> Response:
        return Response(self.body(), self.status, self.headers, media_type=PROBLEM_JSON)


def not_found(what: str) -> MonetaError:
    return MonetaError(404, "not_found", f"{what} not found")


# Codes raised by the ledger's SQL functions (SQLSTATE MN001, message = code).
_LEDGER_CODES: dict[str, int] = {
    "not_found": 404,
    "account_not_found": 422,
    "insufficient_funds": 422,
    "currency_mismatch": 422,
    "same_account": 422,
    "invalid_postings": 422,
    "invalid_post_amount": 422,
    "duplicate_external_id": 409,
    "transaction_not_pending": 409,
    "transaction_not_posted": 409,
    "transaction_already_reversed": 409,
    "transaction_is_reversal": 409,
}


def ledger_status(code: str) -> int:
    """The HTTP status of a ledger rule failure code."""
    return _LEDGER_CODES.get(code, 422)


# PostgreSQL errors that a client's request can provoke, and what they mean to the client.
_SQLSTATE_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "22003": (422, "amount_out_of_range", "an amount or balance exceeds the supported range"),
    "55P03": (409, "lock_timeout", "the resource is busy; retry the request"),
    "40P01": (409, "conflict_retry", "a concurrent request conflicted; retry the request"),
    "40001": (409, "conflict_retry", "a concurrent request conflicted; retry the request"),
    "23505": (409, "conflict", "the resource already exists"),
    "57014": (503, "timeout", "the database did not answer in time; retry the request"),
    "57P01": (503, "unavailable", "the database is restarting; retry the request"),
    "57P02": (503, "unavailable", "the database is restarting; retry the request"),
    "57P03": (503, "unavailable", "the database is starting; retry the request"),
}


def from_postgres(error: asyncpg.PostgresError) -> MonetaError | None:
    """Translate a PostgreSQL error into a client-facing problem, or None if it is a bug."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate == "MN001":
        code = str(getattr(error, "message", "")) or "invalid_request"
        detail = str(getattr(error, "detail", "") or code)
        # A batch names the failing item in the hint: "index=<i>".
        hint = str(getattr(error, "hint", "") or "")
        extra = {"index": int(hint[6:])} if hint.startswith("index=") else None
        return MonetaError(ledger_status(code), code, detail, extra=extra)
    if sqlstate in _SQLSTATE_PROBLEMS:
        status, code, detail = _SQLSTATE_PROBLEMS[sqlstate]
        return MonetaError(status, code, detail)
    return None


@contextmanager
def single_item_errors() -> Iterator[None]:
    """Ledger failures of a one-item call (a single transaction, a reversal) carry no batch
    `index`: the engine names items, this request has just one."""
    try:
        yield
    except asyncpg.PostgresError as error:
        problem = from_postgres(error)
        if problem is None or "index" not in problem.extra:
            raise
        del problem.extra["index"]
        raise problem from None


def _validation_problem(exc: RequestValidationError) -> MonetaError:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            return MonetaError(400, "malformed_json", "the request body is not valid JSON")
        errors.append({"loc": loc, "msg": str(err.get("msg", "")), "type": err.get("type")})
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    detail = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else str(first["msg"])
    return MonetaError(422, "validation_error", detail, extra={"errors": errors})


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(MonetaError)
    async def moneta_error(_: Request, exc: MonetaError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _validation_problem(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers 400 for bodies it cannot decode at all (invalid UTF-8, nesting too
        # deep, integers too long to parse): to the client that is malformed JSON.
        code = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return MonetaError(exc.status_code, code, str(exc.detail)).response()

    @app.exception_handler(asyncpg.PostgresError)
    async def postgres_error(request: Request, exc: asyncpg.PostgresError) -> Response:
        problem = from_postgres(exc)
        if problem is None:
            log.exception("database error on %s %s", request.method, request.url.path)
            problem = MonetaError(500, "internal_error", "an internal error occurred")
        return problem.response()

    @app.exception_handler(asyncpg.InterfaceError)
    async def connection_lost(request: Request, exc: asyncpg.InterfaceError) -> Response:
        log.error("database connection error on %s %s: %s", request.method, request.url.path, exc)
        return MonetaError(503, "unavailable", "the database is unavailable; retry").response()

    @app.exception_handler(OSError)
    async def database_unreachable(request: Request, exc: OSError) -> Response:
        log.error("I/O error on %s %s: %s", request.method, request.url.path, exc)
        return MonetaError(503, "unavailable", "a dependency is unavailable; retry").response()

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return MonetaError(500, "internal_error", "an internal error occurred").response()
