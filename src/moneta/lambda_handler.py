"""The API on AWS Lambda (API Gateway HTTP or REST API, or a function URL) through Mangum.

Handler: `moneta.lambda_handler.handler`. Configure it like any api process, with
MONETA_DATABASE_URL (RDS, ideally through RDS Proxy: each execution environment keeps
its own small pool). Scheduled jobs, the relay and webhooks do not run inside Lambda:
run `moneta worker`, `moneta relay` and `moneta webhooks` elsewhere (ECS, EKS).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from moneta.app import configure_process, create_app
from moneta.config import Settings


def build_handler(settings: Settings | None = None) -> Mangum:
    settings = settings or Settings()
    if not settings.database_url:
        raise RuntimeError("MONETA_DATABASE_URL is required on Lambda (no embedded database)")
    # One request at a time per environment: a tiny pool, and no background jobs that a
    # frozen environment would leave half done.
    settings = settings.model_copy(
        update={
            "inprocess_worker": False,
            "inprocess_webhooks": False,
            "inprocess_relay": False,
            "db_pool_min_size": 1,
            "db_pool_max_size": min(settings.db_pool_max_size, 2),
        }
    )
    configure_process(settings)
    # Mangum runs the app's lifespan around each invocation: the pool opens and closes with
    # it, so a frozen environment holds no connections.
    # Problem documents are text too: without this they would go out base64-encoded.
    return Mangum(
        create_app(settings),
        lifespan="auto",
        text_mime_types=["application/json", "application/problem+json", "text/"],
    )


_built: Mangum | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point; the app is built on the first (cold) invocation."""
    global _built
    if _built is None:
        _built = build_handler()
    answer: dict[str, Any] = _built(event, context)
    return answer
