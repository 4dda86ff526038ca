"""Per-request context that log records carry: the request id and the ledger acted on."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("moneta_request_id", default=None)
ledger_id: ContextVar[str | None] = ContextVar("moneta_ledger_id", default=None)
