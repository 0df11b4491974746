"""``/metrics`` with several workers: each publishes its counters, the one scraped adds them up."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from eventyard.quality.metrics import Metrics
from eventyard.quality.worker_metrics import clear


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def workers(tmp_path: Path, n: int = 2) -> list[Metrics]:
    group = [Metrics() for _ in range(n)]
    for index, metrics in enumerate(group):
        metrics.share_with_workers(tmp_path / "metrics-8080", index, n)
    return group


def test_a_scrape_adds_the_other_workers_counters_and_histograms(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    first.ingest.count("src_a", 3, 300)
    second.ingest.count("src_a", 4, 400)
    second.ingest.count("src_b", 1, 50)  # a label value only the other worker saw
    first.requests_rejected.labels("invalid_json").inc()
    second.requests_rejected.labels("invalid_json").inc(2)
    second.delivery_latency.labels("d1").observe(0.2)
    first.destination_degraded.labels("d1").set(1)
    second.destination_degraded.labels("d1").set(1)
    assert second.workers is not None
    second.workers.publish()

    seen = samples(first.render())
    assert seen[("eventyard_events_received_total", (("source_id", "src_a"),))] == 7
    assert seen[("eventyard_ingest_bytes_total", (("source_id", "src_a"),))] == 700
    assert seen[("eventyard_events_received_total", (("source_id", "src_b"),))] == 1
    assert seen[("eventyard_requests_rejected_total", (("reason", "invalid_json"),))] == 3
    assert seen[("eventyard_delivery_latency_seconds_count", (("destination", "d1"),))] == 1
    assert seen[("eventyard_delivery_latency_seconds_bucket", (("destination", "d1"), ("le", "0.25")))] == 1
    # a gauge is the answering worker's own (the log's gauges are the same in every worker)
    assert seen[("eventyard_destination_degraded", (("destination", "d1"),))] == 1


def test_a_worker_that_has_not_published_adds_nothing_and_a_stale_run_is_cleared(tmp_path: Path) -> None:
    first, second = workers(tmp_path)
    first.ingest.count("src_a", 2, 20)
    assert samples(first.render())[("eventyard_events_received_total", (("source_id", "src_a"),))] == 2
    second.ingest.count("src_a", 5, 50)
    assert second.workers is not None
    second.workers.publish()
    assert samples(first.render())[("eventyard_events_received_total", (("source_id", "src_a"),))] == 7
    clear(tmp_path / "metrics-8080")  # a new run starts from nothing
    assert samples(first.render())[("eventyard_events_received_total", (("source_id", "src_a"),))] == 2


def test_an_unreadable_snapshot_is_skipped_not_fatal(tmp_path: Path) -> None:
    first, _second = workers(tmp_path)
    (tmp_path / "metrics-8080").mkdir(parents=True, exist_ok=True)
    (tmp_path / "metrics-8080" / "worker-1").write_bytes(b"\xc1 not msgpack")
    first.ingest.count("src_a", 2, 20)
    assert samples(first.render())[("eventyard_events_received_total", (("source_id", "src_a"),))] == 2


def test_one_process_renders_its_own_registry(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.ingest.count("src_a", 1, 10)
    assert metrics.workers is None
    assert samples(metrics.render())[("eventyard_events_received_total", (("source_id", "src_a"),))] == 1
