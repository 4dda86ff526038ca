"""The event JSON Schemas published in docs/events/: current with the code, and every
event the API really emits validates against its type's schema."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from moneta.events.schemas import EVENT_TYPES, write_schemas
from tests.conftest import ROOT, Tenant
from tests.test_events import wait_events

PUBLISHED = ROOT / "docs" / "events"


def test_published_schemas_are_current(tmp_path: Path) -> None:
    for generated in write_schemas(tmp_path):
        published = PUBLISHED / generated.name
        assert published.exists(), f"{generated.name} is not published"
        assert published.read_text() == generated.read_text(), (
            f"{generated.name} is stale: run `python -m moneta.events.schemas docs/events`"
        )
    assert {p.name for p in PUBLISHED.glob("*.schema.json")} == {
        f"{t}.schema.json" for t in EVENT_TYPES
    }


def test_every_event_type_validates_against_its_schema(tenant: Tenant) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice", metadata={"tier": "gold"})
    posted = tenant.transfer("cash", "alice", 500, metadata={"order": "o-1"})
    tenant.client.post(f"/v1/transactions/{posted['id']}/reverse")
    hold = tenant.transfer("cash", "alice", 30, pending=True)
    tenant.client.post(f"/v1/transactions/{hold['id']}/post", json={"amount": 20})
    voided = tenant.transfer("cash", "alice", 40, pending=True)
    tenant.client.post(f"/v1/transactions/{voided['id']}/void")
    tenant.transfer("cash", "alice", 50, pending=True, expires_in=1)
    time.sleep(1.5)  # the in-process worker expires it

    wanted = set(EVENT_TYPES)
    deadline = time.monotonic() + 30
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = wait_events(tenant, 12)
        if wanted <= {e["type"] for e in events}:
            break
        time.sleep(0.2)
    assert wanted <= {e["type"] for e in events}, {e["type"] for e in events}
    for event in events:
        schema = json.loads((PUBLISHED / f"{event['type']}.schema.json").read_text())
        errors = list(Draft202012Validator(schema).iter_errors(event))
        assert not errors, (event["type"], [e.message for e in errors])
        # And another type's schema refuses it: the type is pinned.
        other = next(t for t in EVENT_TYPES if t != event["type"])
        wrong = json.loads((PUBLISHED / f"{other}.schema.json").read_text())
        assert list(Draft202012Validator(wrong).iter_errors(event))
