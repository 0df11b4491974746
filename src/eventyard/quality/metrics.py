"""Prometheus metrics of one eventyard process, on a registry of its own.

Names (all prefixed ``eventyard_``):

- ``events_received_total{source_id}``: events accepted and durably stored;
- ``events_rejected_total{reason}``: events refused one by one (see ``collect.reasons.EVENT``);
- ``requests_rejected_total{reason}``: whole requests refused (``collect.reasons.REQUEST``);
- ``ingest_bytes_total{source_id}``: request body bytes accepted (after decompression);
- ``sdk_metrics_reports_total``: analytics.js usage reports to ``/v1/m`` (not events);
- ``log_backlog{topic}``: records not yet processed, read when scraped;
- ``log_disk_bytes``: size of the embedded log on disk, read when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]


class _LogCollector(Collector):
    def __init__(self, backlog: Callable[[], dict[str, int]], disk: Callable[[], int | None]) -> None:
        self._backlog = backlog
        self._disk = disk

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("eventyard_log_backlog", "Records not yet processed, per topic", labels=["topic"])
        for topic, n in sorted(self._backlog().items()):
            gauge.add_metric([topic], n)
        yield gauge
        disk = self._disk()
        if disk is not None:
            yield GaugeMetricFamily("eventyard_log_disk_bytes", "Size of the log on disk", value=disk)


class Metrics:
    """The counters every stage updates; one instance per process (or per test app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_received = Counter(
            "eventyard_events_received",
            "Events accepted and durably stored",
            ["source_id"],
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "eventyard_events_rejected",
            "Events refused at ingest, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.requests_rejected = Counter(
            "eventyard_requests_rejected",
            "Whole requests refused at ingest, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.ingest_bytes = Counter(
            "eventyard_ingest_bytes",
            "Request body bytes accepted",
            ["source_id"],
            registry=self.registry,
        )

        self.pipeline_events = Counter(
            "eventyard_pipeline_events",
            "Events leaving the unify pipeline, by outcome (kept, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.pipeline_dropped = Counter(
            "eventyard_pipeline_dropped",
            "Events dropped by a unify stage, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.filtered = Counter(
            "eventyard_filtered",
            "Events not sent to a destination, by reason",
            ["destination", "reason"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "eventyard_deliveries",
            "Delivery outcomes per destination (delivered, retry, failed, dropped, dead_lettered)",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "eventyard_delivery_latency_seconds",
            "Time from receipt to successful delivery",
            ["destination"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.destination_degraded = Gauge(
            "eventyard_destination_degraded",
            "1 while a destination keeps failing (it is never disabled)",
            ["destination"],
            registry=self.registry,
        )
        self.sdk_metrics = Counter(
            "eventyard_sdk_metrics_reports",
            "Usage-metrics reports posted by browser SDKs (acknowledged, not stored)",
            registry=self.registry,
        )

    def watch_log(self, backlog: Callable[[], dict[str, int]], disk: Callable[[], int | None]) -> None:
        self.registry.register(_LogCollector(backlog, disk))

    def render(self) -> bytes:
        return generate_latest(self.registry)
