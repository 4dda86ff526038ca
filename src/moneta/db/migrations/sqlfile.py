"""Runs a migration's sibling .sql file on the migration's connection."""

from pathlib import Path
from typing import Any

from alembic import op


def run_sql_file(migration_file: str, name: str) -> None:
    sql = (Path(migration_file).parent / name).read_text()
    # The raw psycopg connection: with no parameters it uses the simple query protocol, so
    # a file may hold many statements and `%` in format() strings is left alone.
    dbapi: Any = op.get_bind().connection.dbapi_connection
    dbapi.execute(sql)
