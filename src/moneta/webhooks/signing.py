"""The delivery signature: HMAC-SHA256 over `<timestamp>.<body>`, sent as
`Moneta-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]` (the scheme Stripe uses).

While a secret is being rotated both secrets sign, so a receiver holding either accepts.
The timestamp is signed too: a receiver refuses old signatures, which stops replays."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

SIGNATURE_HEADER = "Moneta-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The payload was not signed by a secret you hold, or the signature is too old."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Iterable[str], timestamp: int | None = None) -> str:
    """The header value for `body`, signed with every secret given (newest first)."""
    at = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={at}"] + [f"v1={_digest(secret, at, body)}" for secret in secrets]
    return ",".join(parts)


def verify(
    payload: bytes | str,
    header: str,
    secret: str | Iterable[str],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery and return the event it carries.

    `payload` must be the raw request body, byte for byte. `secret` may be several (a
    receiver rotating its copy). Raises `SignatureError` if no v1 signature matches one of
    the secrets, or if the signed timestamp is more than `tolerance_s` away from now."""
    body = payload.encode() if isinstance(payload, str) else payload
    secrets = [secret] if isinstance(secret, str) else list(secret)
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("no timestamp or no v1 signature in the header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("the signature's timestamp is outside the tolerance")
    expected = [_digest(s, timestamp, body) for s in secrets]
    # Compare every pair in constant time; no early exit that would leak which one matched.
    matched = False
    for candidate in signatures:
        for good in expected:
            matched |= hmac.compare_digest(candidate.encode(), good.encode())
    if not matched:
        raise SignatureError("no signature matches the secret")
    event: dict[str, Any] = json.loads(body)
    return event
