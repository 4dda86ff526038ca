"""Webhooks: tenants' endpoints, signed deliveries with retries, and `verify` for receivers.

Receivers only need this::

    from moneta.webhooks import verify
    event = verify(request_body, request.headers["Moneta-Signature"], secret)
"""

from moneta.webhooks.signing import SIGNATURE_HEADER, SignatureError, sign, verify

__all__ = ["SIGNATURE_HEADER", "SignatureError", "sign", "verify"]
