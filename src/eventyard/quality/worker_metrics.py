"""``/metrics`` of a server whose port several worker processes share (``workers``).

Behind one listening socket a scrape reaches whichever worker accepts it, and each worker
counts only the requests it served. So every worker writes a snapshot of its counters and
histograms to a file of its own once a second (``<data dir>/run/metrics-<port>/worker-<i>``,
replaced atomically), and the worker that answers a scrape adds the other workers' latest
snapshots to its own live values. Counters and histograms are summed sample by sample;
gauges (the log's backlog and disk size, which every worker reads from the same log) are the
answering worker's own.

A peer's share is at most ``PUBLISH_SECONDS`` old. Scrapes a second or more apart therefore
never see a counter go down; the first process clears the directory before it starts its
workers, so a snapshot of an earlier run is never added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import msgspec
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: How often a worker rewrites its snapshot.
PUBLISH_SECONDS = 1.0
#: Metric types whose samples are summed over the workers.
_SUMMED = ("counter", "histogram")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


class _Sample(msgspec.Struct, array_like=True):
    name: str
    labels: dict[str, str]
    value: float


class _Family(msgspec.Struct, array_like=True):
    name: str
    samples: list[_Sample]


def snapshot_dir(data_path: Path, port: int) -> Path:
    """Where the workers of the server on ``port`` keep their snapshots."""
    return data_path / "run" / f"metrics-{port}"


def clear(directory: Path) -> None:
    """Forget the snapshots of an earlier run (the first process, before it starts workers)."""
    shutil.rmtree(directory, ignore_errors=True)


def _key(name: str, labels: dict[str, str]) -> SampleKey:
    return name, tuple(sorted(labels.items()))


class WorkerMetrics:
    """Publishes this worker's counters and merges the other workers' into a scrape."""

    def __init__(self, registry: CollectorRegistry, directory: Path, index: int, workers: int) -> None:
        self.registry = registry
        self.directory = directory
        self.index = index
        self.workers = workers
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[_Family])

    def _path(self, index: int) -> Path:
        return self.directory / f"worker-{index}"

    def publish(self) -> None:
        """Write this worker's counters and histograms (atomically: readers see old or new)."""
        families = [
            _Family(family.name, [_Sample(s.name, dict(s.labels), s.value) for s in family.samples])
            for family in self.registry.collect()
            if family.type in _SUMMED
        ]
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(self.index)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(self._encoder.encode(families))
        os.replace(temporary, path)

    def _peers(self) -> dict[str, dict[SampleKey, float]]:
        """The other workers' samples, summed, by family name."""
        summed: dict[str, dict[SampleKey, float]] = {}
        for index in range(self.workers):
            if index == self.index:
                continue
            try:
                families = self._decoder.decode(self._path(index).read_bytes())
            except FileNotFoundError:
                continue  # that worker has not published yet
            except (OSError, msgspec.DecodeError) as exc:
                log.warning("skipping worker %d's metrics snapshot: %s", index, exc)
                continue
            for family in families:
                samples = summed.setdefault(family.name, {})
                for sample in family.samples:
                    key = _key(sample.name, sample.labels)
                    samples[key] = samples.get(key, 0.0) + sample.value
        return summed

    def collect(self) -> Iterable[Metric]:
        """This worker's families, counters and histograms with the other workers' added."""
        peers = self._peers()
        for family in self.registry.collect():
            extra = peers.get(family.name) if family.type in _SUMMED else None
            if not extra:
                yield family
                continue
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                value = sample.value + extra.pop(_key(sample.name, sample.labels), 0.0)
                merged.add_sample(sample.name, sample.labels, value)
            for (name, labels), value in extra.items():  # label values only other workers saw
                merged.add_sample(name, dict(labels), value)
            yield merged

    def view(self) -> CollectorRegistry:
        """A registry to render: this worker's metrics with the others' added."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(self))
        return registry

    async def run(self) -> None:
        """Publish every ``PUBLISH_SECONDS`` until cancelled (then once more)."""
        try:
            while True:
                try:
                    await asyncio.to_thread(self.publish)
                except OSError as exc:
                    log.warning("could not write this worker's metrics snapshot: %s", exc)
                await asyncio.sleep(PUBLISH_SECONDS)
        finally:
            with contextlib.suppress(OSError):
                self.publish()


class _Merged(Collector):
    def __init__(self, source: WorkerMetrics) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return self._source.collect()


__all__ = ["PUBLISH_SECONDS", "WorkerMetrics", "clear", "snapshot_dir"]
