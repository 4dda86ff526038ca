"""Idempotency-Key: a POST takes effect at most once; its replay returns the first answer."""
