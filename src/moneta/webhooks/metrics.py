"""Prometheus metrics of `moneta webhooks`: attempt outcomes, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from moneta.webhooks.dispatcher import Dispatcher

OUTCOMES = ("succeeded", "failed", "dead")


class DispatcherCollector(Collector):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "moneta_webhook_deliveries",
            "Delivery attempts by outcome (failed: will be retried; dead: dead-lettered)",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            family.add_metric([outcome], self.dispatcher.outcomes[outcome])
        yield family


def registry_for(dispatcher: Dispatcher) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DispatcherCollector(dispatcher))
    return registry
