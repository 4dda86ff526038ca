"""Moneta: a double-entry ledger and payments backend on PostgreSQL."""

__version__ = "0.1.0"
