"""/console: sign in with an API key, browse ledgers and balances, sign out.

The session lives in Redis; the cookie is HttpOnly, Secure and SameSite=Strict, scoped
to /console. Every form carries a CSRF token (the session's, or before sign-in one in a
short-lived cookie). A revoked key ends its sessions at their next request."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from moneta.accounts import repository as accounts
from moneta.auth.deps import local_key_cache
from moneta.auth.service import authenticate
from moneta.console import pages
from moneta.console.sessions import COOKIE, Session, SessionStore, SessionsUnavailableError
from moneta.http.deps import AppState, app_state
from moneta.http.ids import parse_id
from moneta.http.problems import MonetaError
from moneta.ledgers import repository as ledgers

router = APIRouter(prefix="/console", include_in_schema=False)

LOGIN_CSRF = "moneta_console_login"
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers=_HEADERS)


def _store(state: AppState) -> SessionStore:
    if not state.redis.configured:
        raise MonetaError(404, "not_found", "the console needs MONETA_REDIS_URL")
    return SessionStore(state.redis, state.settings.console_session_idle_s)


def _unavailable() -> HTMLResponse:
    return _html(pages.page("Unavailable", "<p>Sessions are unavailable; retry.</p>"), 503)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > 4096:
        raise MonetaError(413, "payload_too_large", "the form is too large")
    fields = parse_qs(body.decode(errors="replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items()}


async def _session(request: Request, state: AppState) -> Session | None:
    """The signed-in session, if any, whose key is still live."""
    session = await _store(state).get(request.cookies.get(COOKIE))
    if session is None:
        return None
    async with state.db.connection() as conn:
        live = await conn.fetchval(
            "SELECT revoked_at IS NULL FROM api_keys WHERE id = $1", uuid.UUID(session.key_id)
        )
    return session if live else None


def _to_login() -> RedirectResponse:
    return RedirectResponse("/console/login", 303, headers=_HEADERS)


async def _signed_in(request: Request, state: AppState) -> Session | Response:
    """The session, or the answer to give instead (sign in first; sessions unavailable)."""
    try:
        session = await _session(request, state)
    except SessionsUnavailableError:
        return _unavailable()
    return session if session is not None else _to_login()


@router.get("/login")
async def login_form(request: Request) -> Response:
    _store(app_state(request))
    csrf = secrets.token_urlsafe(24)
    response = _html(pages.login(csrf))
    _set_cookie(request, response, LOGIN_CSRF, csrf, 600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    state = app_state(request)
    store = _store(state)
    form = await _form(request)
    expected = request.cookies.get(LOGIN_CSRF)
    if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
        return _html(pages.login(expected or "", "The form expired; try again."), 400)
    try:
        principal = await authenticate(
            state.db,
            local_key_cache(state),
            f"Bearer {form.get('api_key', '').strip()}",
            state.key_cache,
        )
    except MonetaError:
        return _html(pages.login(expected, "That API key is not valid."), 401)
    try:
        session_id = await store.create(principal.key_id, principal.scope, principal.ledger_id)
    except SessionsUnavailableError:
        return _unavailable()
    response = RedirectResponse("/console", 303, headers=_HEADERS)
    _set_cookie(request, response, COOKIE, session_id, state.settings.console_session_idle_s)
    response.delete_cookie(LOGIN_CSRF, path="/console")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    state = app_state(request)
    try:
        session = await _session(request, state)
    except SessionsUnavailableError:
        return _unavailable()
    form = await _form(request)
    if session is not None and secrets.compare_digest(form.get("csrf", ""), session.csrf):
        await _store(state).delete(request.cookies.get(COOKIE, ""))
    elif session is not None:
        return _html(pages.page("Refused", "<p>The form expired.</p>", session.csrf), 400)
    response = _to_login()
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
async def home(request: Request) -> Response:
    state = app_state(request)
    session = await _signed_in(request, state)
    if isinstance(session, Response):
        return session
    only = uuid.UUID(session.ledger_id) if session.ledger_id else None
    async with state.db.connection() as conn:
        rows = await ledgers.page(conn, only, None, 200)
    return _html(pages.ledgers([json.loads(body) for _, body in rows], session.csrf))


@router.get("/ledgers/{ledger_id}")
async def ledger(ledger_id: str, request: Request) -> Response:
    state = app_state(request)
    session = await _signed_in(request, state)
    if isinstance(session, Response):
        return session
    parsed = parse_id(ledger_id)
    visible = parsed is not None and session.ledger_id in (None, str(parsed))
    info: dict[str, Any] | None = None
    async with state.db.connection() as conn:
        if visible and parsed is not None:
            body = await ledgers.get(conn, parsed)
            info = json.loads(body) if body else None
        rows = await accounts.page(conn, parsed, None, {}, None, 500) if info else []
    if info is None:
        return _html(pages.page("Not found", "<p>No such ledger.</p>", session.csrf), 404)
    return _html(pages.ledger(info, [json.loads(body) for _, body in rows], session.csrf))


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/console",
        httponly=True,
        secure=app_state(request).settings.console_cookie_secure,
        samesite="strict",
    )
