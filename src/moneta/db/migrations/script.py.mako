"""${message}

Revision ID: ${up_revision}
"""

from moneta.db.migrations.sqlfile import run_sql_file

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "${up_revision}.sql")


def downgrade() -> None:
    raise NotImplementedError
