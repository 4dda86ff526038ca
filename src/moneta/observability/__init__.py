"""Observability: request context, structured logs, Prometheus metrics, tracing, Sentry."""
