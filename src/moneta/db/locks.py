"""Every advisory lock key Moneta takes, in one place so two can never collide."""

# `moneta migrate`: concurrent runs queue behind each other (transaction-scoped).
MIGRATION = 0x6D6F6E657461  # "moneta"
# The event sequencer's leader (session-scoped, held while sequencing).
SEQUENCER = 0x6D6F6E657401
# The scheduled invariant check: one runner at a time (session-scoped, released after).
INVARIANTS = 0x6D6F6E657402
# Relay leases use hashtextextended('<consumer>:<ledger id>', 0): see events/leases.py.
