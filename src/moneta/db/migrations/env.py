"""Alembic environment: online migrations over psycopg, one at a time (advisory lock)."""

from alembic import context
from sqlalchemy import create_engine, text

from moneta.db import locks

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.MIGRATION})
        context.run_migrations()
engine.dispose()
