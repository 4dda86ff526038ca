"""Throughput: unlocked balance deltas for accounts without a limit, and batches.

Revision ID: 0002
"""

from moneta.db.migrations.sqlfile import run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "0002_throughput.sql")


def downgrade() -> None:
    raise NotImplementedError("fold balance_deltas first; not reversible automatically")
