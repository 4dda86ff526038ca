"""Moneta's benchmark harness: throughput and latency of the API under closed-loop load,
against a raw-SQL ceiling measured on the same PostgreSQL, with a conservation check."""
