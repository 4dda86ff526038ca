"""Prometheus metrics of `moneta relay`, read from its live stats at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from moneta.events.relay import Relay
from moneta.observability.metrics import serve_metrics


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.relay.stats
        rows: list[tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str, float]] = [
            (
                CounterMetricFamily,
                "events_published",
                "Events the broker acknowledged",
                stats.published,
            ),
            (
                CounterMetricFamily,
                "failures",
                "Relay passes that failed and were retried",
                stats.failures,
            ),
            (
                GaugeMetricFamily,
                "lag_events",
                "Sequenced events not yet published",
                stats.lag_events,
            ),
            (
                GaugeMetricFamily,
                "lag_seconds",
                "Age of the oldest unpublished event",
                stats.lag_seconds,
            ),
            (
                GaugeMetricFamily,
                "ledgers_owned",
                "Ledgers this replica publishes",
                len(stats.owned),
            ),
        ]
        for kind, name, description, value in rows:
            family = kind(f"moneta_relay_{name}", description, labels=["sink"])
            family.add_metric([self.relay.sink.name], value)
            yield family


def serve_relay_metrics(relay: Relay, port: int) -> None:
    registry = CollectorRegistry()
    registry.register(RelayCollector(relay))
    serve_metrics(registry, port)
