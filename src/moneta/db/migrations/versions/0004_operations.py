"""Operations: per-key rate limits and the scheduled invariant check.

Revision ID: 0004
"""

from moneta.db.migrations.sqlfile import run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "0004_operations.sql")


def downgrade() -> None:
    raise NotImplementedError("keep the check history; drop by hand if you must")
