"""Ledger core: tenants, accounts, balances, transactions, entries, outbox, keys.

Revision ID: 0001
"""

from moneta.db.migrations.sqlfile import run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "0001_ledger_core.sql")


def downgrade() -> None:
    # Dropping a ledger's history is never automatic: restore from a backup instead.
    raise NotImplementedError("the ledger core migration is not reversible")
