"""The FastAPI application: routers, middleware, error handlers and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from moneta import __version__, worker
from moneta.accounts.endpoints import router as accounts_router
from moneta.auth.endpoints import router as api_keys_router
from moneta.config import Settings
from moneta.console.endpoints import router as console_router
from moneta.db.database import Database
from moneta.db.runtime import DatabaseHandle, open_database
from moneta.events.endpoints import router as events_router
from moneta.events.relay import Relay
from moneta.events.sinks import make_sink
from moneta.http.deps import AppState, StateDep
from moneta.http.limits import BodyLimitMiddleware
from moneta.http.pagination import json_response
from moneta.http.problems import MonetaError, install_handlers
from moneta.kv.client import RedisState
from moneta.kv.keycache import SharedKeyCache
from moneta.kv.ratelimit import RateLimiter, RateLimitHeaders
from moneta.ledgers.endpoints import router as ledgers_router
from moneta.observability.errors import configure_sentry
from moneta.observability.logs import configure_logging
from moneta.observability.metrics import Metrics
from moneta.observability.middleware import ObservabilityMiddleware
from moneta.observability.tracing import configure_tracing, instrument_app
from moneta.transactions.endpoints import router as transactions_router
from moneta.webhooks.dispatcher import Dispatcher
from moneta.webhooks.endpoints import router as webhooks_router

log = logging.getLogger(__name__)


def create_app(settings: Settings, handle: DatabaseHandle | None = None) -> FastAPI:
    """`handle`: an already opened database, else the lifespan opens one; it closes either."""

    metrics = Metrics()
    tracer = configure_tracing("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = handle if handle is not None else await asyncio.to_thread(open_database, settings)
        db = await Database.connect(own.url, settings)
        redis = RedisState(settings.redis_url, settings.redis_timeout_s)
        app.state.moneta = AppState(
            settings=settings,
            db=db,
            metrics=metrics,
            redis=redis,
            limiter=RateLimiter(
                redis,
                settings.rate_limit_per_s,
                settings.rate_limit_burst,
                settings.rate_limit_fail_open,
            ),
            key_cache=SharedKeyCache(redis) if redis.configured else None,
        )
        tasks = [asyncio.create_task(own.watch())]
        if settings.inprocess_worker:
            tasks.append(asyncio.create_task(worker.run_with_sequencer(db, own.url, settings)))
        if settings.inprocess_webhooks:
            tasks.append(asyncio.create_task(Dispatcher(db, settings).run_forever()))
        if settings.inprocess_relay and settings.events_sink:
            relay = Relay(db, own.url, settings, make_sink(settings))
            tasks.append(asyncio.create_task(relay.run_forever()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await db.close()
            await redis.close()
            if tracer is not None:
                tracer.shutdown()  # flushes the spans still queued
            # uvicorn re-raises SIGTERM after shutdown: the embedded server stops here or never.
            await asyncio.to_thread(own.close)

    app = FastAPI(
        title="Moneta",
        version=__version__,
        summary="Double-entry ledger and payments backend",
        lifespan=lifespan,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_batch_body_bytes=settings.max_batch_body_bytes,
    )
    app.add_middleware(RateLimitHeaders)
    # Outermost: it times and counts everything, 413s and 401s included.
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, access_log=settings.access_log)
    instrument_app(app, tracer)
    install_handlers(app)
    for router in (
        ledgers_router,
        accounts_router,
        transactions_router,
        events_router,
        webhooks_router,
        api_keys_router,
        console_router,
    ):
        app.include_router(router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        return json_response('{"status":"ok"}')

    @app.get("/readyz", tags=["health"])
    async def readyz(state: StateDep) -> Response:
        """Ready when PostgreSQL answers. Redis is reported, never required: without it
        money moves as before (rate limits fail open or closed, caches fall through)."""
        try:
            async with state.db.connection() as conn:
                await conn.fetchval("SELECT 1", timeout=2.0)
        except Exception as exc:
            raise MonetaError(
                503, "not_ready", f"database unavailable: {type(exc).__name__}"
            ) from None
        report: dict[str, str] = {"status": "ready", "database": "ok"}
        if state.redis.configured:
            healthy = await state.redis.ping()
            report["redis"] = "ok" if healthy else "degraded"
            if not healthy:
                report["status"] = "degraded"
                report["rate_limiting"] = "open" if state.limiter.fail_open else "closed"
        else:
            report["redis"] = "disabled"
        return json_response(json.dumps(report))

    if settings.metrics_enabled:

        @app.get("/metrics", tags=["health"], include_in_schema=False)
        async def prometheus(request: Request, state: StateDep) -> Response:
            token = state.settings.metrics_token
            given = request.headers.get("authorization", "")
            if token and not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise MonetaError(401, "unauthorized", "metrics need the metrics token")
            await state.metrics.refresh(state.db)
            return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call (`moneta serve --workers N`)."""
    settings = Settings()
    configure_process(settings)
    return create_app(settings)


def configure_process(settings: Settings) -> None:
    """Logging and error reporting, once per process."""
    configure_logging(settings.log_level, settings.log_format)
    configure_sentry(settings.sentry_dsn, settings.environment)
