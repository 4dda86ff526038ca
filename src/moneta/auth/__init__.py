"""API keys, scopes and tenant boundaries (a key may be bound to one ledger)."""
