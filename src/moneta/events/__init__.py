"""Events: the transactional outbox and its read API (the relay and webhooks come later)."""
