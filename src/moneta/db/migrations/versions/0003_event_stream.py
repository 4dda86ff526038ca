"""Event stream: a per-ledger, commit-ordered event log fed by logical decoding, consumer
cursors for the relay and webhooks, and webhook endpoints and deliveries.

Revision ID: 0003
"""

from moneta.db.migrations.sqlfile import run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "0003_event_stream.sql")


def downgrade() -> None:
    raise NotImplementedError("the event log is history; drop it by hand if you must")
