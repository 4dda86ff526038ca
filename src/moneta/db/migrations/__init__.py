"""Alembic migrations: one file per change, each running its reviewed SQL file."""
