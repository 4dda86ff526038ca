"""PostgreSQL: the connection pool, the embedded server and the Alembic migrations."""
