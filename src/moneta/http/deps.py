"""The application's shared state and the `Annotated` dependencies endpoints declare."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from moneta.config import Settings
from moneta.db.database import Database
from moneta.kv.client import RedisState
from moneta.kv.keycache import SharedKeyCache
from moneta.kv.ratelimit import RateLimiter
from moneta.observability.metrics import Metrics


@dataclass
class AppState:
    settings: Settings
    db: Database
    metrics: Metrics
    redis: RedisState
    limiter: RateLimiter
    key_cache: SharedKeyCache | None
    # Small in-process caches keyed by the component that owns them (e.g. auth).
    caches: dict[str, Any] = field(default_factory=dict)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.moneta
    return state


# Dependencies are async on purpose: FastAPI runs a sync dependency in a worker thread,
# a thread hop per request for a dictionary lookup.
async def get_state(request: Request) -> AppState:
    return app_state(request)


async def get_db(request: Request) -> Database:
    return app_state(request).db


StateDep = Annotated[AppState, Depends(get_state)]
DbDep = Annotated[Database, Depends(get_db)]
