"""API key format: `mk_<key id>_<secret>`; only a SHA-256 of the secret is stored.

The secret has 256 bits of entropy, so a fast hash is enough (no password stretching):
guessing is hopeless and verification stays off the latency budget.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

PREFIX = "mk"


@dataclass(frozen=True)
class NewKey:
    key_id: uuid.UUID
    token: str
    secret_hash: bytes


def generate() -> NewKey:
    key_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, f"{PREFIX}_{key_id.hex}_{secret}", hash_secret(secret))


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse(token: str) -> tuple[uuid.UUID, str] | None:
    """Split a token into (key id, secret); None if it is not shaped like one of ours."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 32 or not parts[2]:
        return None
    try:
        return uuid.UUID(hex=parts[1]), parts[2]
    except ValueError:
        return None


def matches(secret: str, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
