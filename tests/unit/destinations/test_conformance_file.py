"""The file destination passes the destination conformance suite in each format and target."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from eventyard.destinations.file import FileDestination, FileSettings
from eventyard.testing.conformance import DestinationConformance


class LocalTarget(DestinationConformance):
    root: Path
    format = "jsonl"
    compression: str | None = None

    def make_destination(self, tmp_path: Path) -> FileDestination:
        self.root = tmp_path / "lake"
        settings = FileSettings(path=str(self.root), format=self.format, compression=self.compression)  # type: ignore[arg-type]
        return FileDestination(settings, self.context(tmp_path))

    def delivered_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self.root.rglob("part-*"):
            if path.suffix == ".parquet":
                ids.update(pq.read_table(path, columns=["message_id"]).column("message_id").to_pylist())
            else:
                data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
                ids.update(json.loads(line)["messageId"] for line in data.splitlines())
        return ids


class TestLocalJsonlConformance(LocalTarget):
    pass


class TestLocalGzipJsonlConformance(LocalTarget):
    compression = "gzip"


class TestLocalParquetConformance(LocalTarget):
    format = "parquet"


class MemoryTarget(DestinationConformance):
    url: str

    @pytest.fixture(autouse=True)
    def forget(self) -> Iterator[None]:
        """memory:// is one store per process: remove this test's files afterwards."""
        self.url = f"memory://conformance-{uuid.uuid4().hex}/events"
        yield
        fs, root = fsspec.core.url_to_fs(self.url)
        if fs.exists(root):
            fs.rm(root, recursive=True)


class TestMemoryParquetConformance(MemoryTarget):
    def make_destination(self, tmp_path: Path) -> FileDestination:
        settings = FileSettings(path=self.url, format="parquet", compression="zstd", partition_by=("type", "date"))
        return FileDestination(settings, self.context(tmp_path))

    def delivered_ids(self) -> set[str]:
        fs, root = fsspec.core.url_to_fs(self.url)
        ids: set[str] = set()
        for path in fs.find(root):
            with fs.open(path, "rb") as f:
                ids.update(pq.read_table(f).column("message_id").to_pylist())
        return ids


class TestMemoryJsonlConformance(MemoryTarget):
    def make_destination(self, tmp_path: Path) -> FileDestination:
        return FileDestination(FileSettings(path=self.url), self.context(tmp_path))

    def delivered_ids(self) -> set[str]:
        fs, root = fsspec.core.url_to_fs(self.url)
        return {json.loads(line)["messageId"] for path in fs.find(root) for line in fs.cat_file(path).splitlines()}
