"""Which ledger a request acts on, seen through the caller's key."""

from __future__ import annotations

import uuid

from moneta.auth.schemas import Principal
from moneta.http.problems import MonetaError, not_found
from moneta.observability import context


def target_ledger(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID:
    """The body's ledger_id, defaulting to the key's own ledger; another tenant's is a 404."""
    ledger_id = requested or principal.ledger_id
    if ledger_id is None:
        raise MonetaError(422, "validation_error", "ledger_id: field required for this key")
    if not principal.sees(ledger_id):
        raise not_found("ledger")
    context.ledger_id.set(str(ledger_id))  # for this request's log lines
    return ledger_id


def visible_ledger(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID | None:
    """A list filter: the key's ledger, or any (None) for an operator key."""
    if requested is not None and not principal.sees(requested):
        raise not_found("ledger")
    visible = requested or principal.ledger_id
    if visible is not None:
        context.ledger_id.set(str(visible))
    return visible
