"""The error responses every /v1 route documents: RFC 9457 problem+json with a `code`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable machine-readable error code")
    index: int | None = Field(default=None, description="the failing item of a batch")


_MEANING = {
    400: "malformed JSON, an invalid cursor or Idempotency-Key",
    401: "no API key, or not a valid one",
    403: "the key's scope does not allow this",
    404: "no such resource (another tenant's ids included)",
    409: "wrong state, duplicate, or a concurrent request with the same Idempotency-Key",
    413: "the body is too large",
    415: "the body is not JSON",
    422: "a validation or business-rule failure (e.g. insufficient_funds)",
    503: "the database is unavailable; retry",
}

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": meaning,
        "content": {"application/problem+json": {"schema": Problem.model_json_schema()}},
    }
    for status, meaning in _MEANING.items()
}
