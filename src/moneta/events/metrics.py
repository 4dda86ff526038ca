"""Prometheus metrics of `moneta relay`, read from its live stats at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from moneta.events.relay import Relay


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats, sink = self.relay.stats, self.relay.sink.name
        published = CounterMetricFamily(
            "moneta_relay_events_published", "Events acknowledged by the broker", labels=["sink"]
        )
        published.add_metric([sink], stats.published)
        failures = CounterMetricFamily(
            "moneta_relay_failures", "Relay passes that failed and were retried", labels=["sink"]
        )
        failures.add_metric([sink], stats.failures)
        lag = GaugeMetricFamily(
            "moneta_relay_lag_events", "Sequenced events not yet published", labels=["sink"]
        )
        lag.add_metric([sink], stats.lag_events)
        age = GaugeMetricFamily(
            "moneta_relay_lag_seconds", "Age of the oldest unpublished event", labels=["sink"]
        )
        age.add_metric([sink], stats.lag_seconds)
        owned = GaugeMetricFamily(
            "moneta_relay_ledgers_owned", "Ledgers this replica publishes", labels=["sink"]
        )
        owned.add_metric([sink], len(stats.owned))
        yield from (published, failures, lag, age, owned)


def serve_relay_metrics(relay: Relay, port: int) -> None:
    REGISTRY.register(RelayCollector(relay))
    start_http_server(port, addr="0.0.0.0")  # noqa: S104 - scraped from outside the pod
