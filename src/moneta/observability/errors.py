"""Sentry: unhandled errors and ERROR log records are reported when MONETA_SENTRY_DSN is
set. Nothing personal or secret leaves: no request bodies, cookies, auth or idempotency
headers, client addresses, or anything shaped like an API key or webhook secret."""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from moneta import __version__
from moneta.observability.logs import redact

_SENSITIVE_HEADERS = {"authorization", "cookie", "idempotency-key", "x-api-key", "set-cookie"}


def configure_sentry(dsn: str | None, environment: str) -> bool:
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=f"moneta@{__version__}",
        send_default_pii=False,
        max_request_body_size="never",
        traces_sample_rate=0.0,
        before_send=scrub,  # type: ignore[arg-type]
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    return True


def scrub(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        request.pop("env", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: ("[redacted]" if k.lower() in _SENSITIVE_HEADERS else v)
                for k, v in headers.items()
            }
    event.pop("user", None)
    scrubbed: dict[str, Any] = _redact_strings(event)
    return scrubbed


def _redact_strings(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v) for v in value]
    return value
