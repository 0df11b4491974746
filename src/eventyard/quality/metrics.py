"""Prometheus metrics of one eventyard process, on a registry of its own.

Names (all prefixed ``eventyard_``):

- ``events_received_total{source_id}``: events accepted and durably stored;
- ``events_rejected_total{reason}``: events refused one by one (see ``collect.reasons.EVENT``);
- ``requests_rejected_total{reason}``: whole requests refused (``collect.reasons.REQUEST``);
- ``ingest_bytes_total{source_id}``: request body bytes accepted (after decompression);
- ``sdk_metrics_reports_total``: analytics.js usage reports to ``/v1/m`` (not events);
- ``warehouse_discards_total{destination,schema,table,column,reason}``: values a warehouse did
  not load and kept in ``<schema>.discards`` instead (see docs/warehouse.md);
- ``log_backlog{topic}``: records not yet processed, read when scraped;
- ``log_disk_bytes``: size of the embedded log on disk, read when scraped;
- ``identity_*`` and ``profile_api_requests_total``: identity resolution and the Profile API
  (see ``docs/identity.md``);
- ``audit_write_failures_total{kind}``: audit entries that could not be written (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eventyard.quality.worker_metrics import WorkerMetrics

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


class IngestCounts(Collector):
    """``events_received_total`` and ``ingest_bytes_total`` per source, read when scraped.

    The tracking API counts every request; a labelled ``prometheus_client.Counter`` costs a
    lock and a label lookup per increment, a dict of two integers does not. The event loop is
    the only writer, so no lock is needed.
    """

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}

    def count(self, source_id: str, events: int, body_bytes: int) -> None:
        counts = self._counts.get(source_id)
        if counts is None:
            counts = self._counts[source_id] = [0, 0]
        counts[0] += events
        counts[1] += body_bytes

    def collect(self) -> Iterable[Metric]:
        received = CounterMetricFamily(
            "eventyard_events_received", "Events accepted and durably stored", labels=["source_id"]
        )
        body = CounterMetricFamily("eventyard_ingest_bytes", "Request body bytes accepted", labels=["source_id"])
        for source_id, (events, body_bytes) in sorted(self._counts.items()):
            received.add_metric([source_id], events)
            body.add_metric([source_id], body_bytes)
        yield received
        yield body


class Metrics:
    """The counters every stage updates; one instance per process (or per test app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: Set when several worker processes share the port (``share_with_workers``).
        self.workers: WorkerMetrics | None = None
        #: Accepted events and body bytes per source (plain numbers: see ``IngestCounts``).
        self.ingest = IngestCounts()
        self.registry.register(self.ingest)
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
        self.warehouse_discards = Counter(
            "eventyard_warehouse_discards",
            "Values a warehouse kept in its discards table instead of loading them, by reason",
            ["destination", "schema", "table", "column", "reason"],
            registry=self.registry,
        )
        self.sdk_metrics = Counter(
            "eventyard_sdk_metrics_reports",
            "Usage-metrics reports posted by browser SDKs (acknowledged, not stored)",
            registry=self.registry,
        )
        # identity and profiles (unify)
        self.identity_events = Counter(
            "eventyard_identity_events",
            "Events through identity resolution, by outcome (resolved, no_identifier, unknown_source)",
            ["outcome"],
            registry=self.registry,
        )
        self.identity_refused = Counter(
            "eventyard_identity_refused",
            "Identifiers of events not added to a profile, by rule (blocked_value, limit:<type>, cap:...)",
            ["rule"],
            registry=self.registry,
        )
        self.identity_merges = Counter(
            "eventyard_identity_merges",
            "Profiles merged into another, by collection and rule (shared_identifier, alias, merge)",
            ["collection", "rule"],
            registry=self.registry,
        )
        self.identity_profiles_created = Counter(
            "eventyard_identity_profiles_created",
            "Profiles created, by collection (users, accounts)",
            ["collection"],
            registry=self.registry,
        )
        self.identity_operations = Counter(
            "eventyard_identity_operations",
            "Operator actions on profiles (remove_identifier, split)",
            ["operation"],
            registry=self.registry,
        )
        self.profile_api_requests = Counter(
            "eventyard_profile_api_requests",
            "Profile API requests, by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )

        self.audit_write_failures = Counter(
            "eventyard_audit_write_failures",
            "Audit entries that could not be written, by kind (change, read); see docs/audit.md",
            ["kind"],
            registry=self.registry,
        )

    def watch_log(self, backlog: Callable[[], dict[str, int]], disk: Callable[[], int | None]) -> None:
        self.registry.register(_LogCollector(backlog, disk))

    def share_with_workers(self, directory: Path, index: int, workers: int) -> WorkerMetrics:
        """Make ``render`` include the other workers' counters (``quality.worker_metrics``)."""
        self.workers = WorkerMetrics(self.registry, directory, index, workers)
        return self.workers

    def render(self) -> bytes:
        if self.workers is not None:
            return generate_latest(self.workers.view())
        return generate_latest(self.registry)
