"""HTML for the console: small, escaped, no scripts (the CSP forbids them anyway)."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = (
    "body{font:15px system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#222}"
    "table{border-collapse:collapse;width:100%}td,th{padding:.3rem .6rem;"
    "border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}.err{color:#b00}header{display:flex;"
    "justify-content:space-between;align-items:center}"
)


def page(title: str, body: str, csrf: str | None = None) -> str:
    logout = (
        f'<form method="post" action="/console/logout"><input type="hidden" name="csrf" '
        f'value="{escape(csrf)}"><button type="submit">Sign out</button></form>'
        if csrf
        else ""
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} - "
        f"Moneta</title><style>{_STYLE}</style></head><body><header><h1>{escape(title)}</h1>"
        f"{logout}</header>{body}</body></html>"
    )


def login(csrf: str, error: str | None = None) -> str:
    problem = f'<p class="err" role="alert">{escape(error)}</p>' if error else ""
    return page(
        "Sign in",
        f"{problem}<form method=post action=/console/login>"
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
        "<label>API key <input name=api_key type=password autocomplete=off required "
        'size=60></label> <button type="submit">Sign in</button></form>',
    )


def ledgers(rows: list[dict[str, Any]], csrf: str) -> str:
    items = "".join(
        f'<tr><td><a href="/console/ledgers/{escape(r["id"])}">{escape(r["name"])}</a></td>'
        f"<td>{escape(r['id'])}</td><td>{escape(str(r['created_at']))}</td></tr>"
        for r in rows
    )
    return page(
        "Ledgers",
        f"<table><tr><th>name</th><th>id</th><th>created</th></tr>{items}</table>",
        csrf,
    )


def ledger(info: dict[str, Any], accounts: list[dict[str, Any]], csrf: str) -> str:
    rows = "".join(
        f"<tr><td>{escape(a['code'] or '')}</td><td>{escape(a['currency'])}</td>"
        f"<td class=n>{escape(str(a['balance']['posted']))}</td>"
        f"<td class=n>{escape(str(a['balance']['available']))}</td>"
        f"<td class=n>{escape(str(a['balance']['pending_debits']))}</td>"
        f"<td class=n>{escape(str(a['balance']['pending_credits']))}</td></tr>"
        for a in accounts
    )
    return page(
        f"Ledger {info['name']}",
        '<p><a href="/console">All ledgers</a></p><table><tr><th>account</th>'
        "<th>currency</th><th>posted</th><th>available</th><th>pending debits</th>"
        f"<th>pending credits</th></tr>{rows}</table>",
        csrf,
    )
