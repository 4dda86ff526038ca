"""Transaction events carry the posted balance after the change of each account they
booked entries on.

Revision ID: 0005
"""

from moneta.db.migrations.sqlfile import run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(__file__, "0005_event_balances.sql")


def downgrade() -> None:
    raise NotImplementedError("restore moneta_event_json from 0003 by hand if you must")
