"""The file destination: JSONL and Parquet, partitions, rotation, durability, fsspec targets."""

from __future__ import annotations

import errno
import gzip
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import msgspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from eventyard.destinations.base import DestinationContext
from eventyard.destinations.file import FileDestination, FileSettings
from eventyard.destinations.file import storage as storage_module
from eventyard.destinations.file.partitions import slug
from eventyard.errors import ConfigError
from eventyard.testing import events
from eventyard.testing.clock import FakeClock

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC).timestamp()


@asynccontextmanager
async def file_destination(
    tmp_path: Path, path: str | Path, clock: FakeClock | None = None, **settings: Any
) -> AsyncIterator[FileDestination]:
    context = DestinationContext("dst-1", "lake", tmp_path / "state", clock=clock or FakeClock(START))
    destination = FileDestination(FileSettings(path=str(path), **settings), context)
    await destination.start()
    try:
        yield destination
    finally:
        await destination.close()


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def jsonl_by_dir(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Relative directory -> the events of its files (file order is not defined)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in data_files(root):
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        out.setdefault(str(path.parent.relative_to(root)), []).extend(json.loads(line) for line in raw.splitlines())
    return out


@pytest.fixture
def memory_url() -> Iterator[str]:
    url = f"memory://test-{uuid.uuid4().hex}/lake"
    yield url
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


async def test_jsonl_goes_into_hive_partitions_by_date_and_event(tmp_path: Path) -> None:
    order = events.track("Order Completed", message_id="m1")
    signup = events.track("Signed Up", message_id="m2")
    who = events.identify(message_id="m3")
    async with file_destination(tmp_path, tmp_path / "lake") as lake:
        outcomes = await lake.deliver(events.deliveries([order, signup, who]))
    assert [o.kind for o in outcomes] == ["delivered"] * 3
    assert jsonl_by_dir(tmp_path / "lake") == {
        "date=2026-11-29/event=order_completed": [order],
        "date=2026-11-29/event=signed_up": [signup],
        "date=2026-11-29/event=identify": [who],
    }
    [name] = {p.name for p in data_files(tmp_path / "lake") if "order_completed" in str(p)}
    assert name.startswith("part-20261129T090000Z-") and name.endswith(".jsonl")


async def test_jsonl_writes_the_mapped_payload_but_partitions_by_the_event(tmp_path: Path) -> None:
    item = events.delivery(events.track("Order Completed"), payload={"order": "ord-1001", "total": 42.5})
    async with file_destination(tmp_path, tmp_path / "lake") as lake:
        await lake.deliver([item])
    assert jsonl_by_dir(tmp_path / "lake") == {"date=2026-11-29/event=order_completed": [item.payload]}


async def test_partition_by_type_and_source(tmp_path: Path) -> None:
    known = events.delivery(events.track(message_id="m1"), source_id="Src Web-1")
    unknown = events.delivery(events.page(message_id="m2"))
    async with file_destination(tmp_path, tmp_path / "lake", partition_by=("type", "source")) as lake:
        await lake.deliver([known, unknown])
    assert set(jsonl_by_dir(tmp_path / "lake")) == {"type=track/source=src_web_1", "type=page/source=unknown"}


async def test_without_partitions_files_go_to_the_root(tmp_path: Path) -> None:
    async with file_destination(tmp_path, tmp_path / "lake", partition_by=()) as lake:
        await lake.deliver(events.deliveries(events.sample(6)))
    assert [(d, len(rows)) for d, rows in jsonl_by_dir(tmp_path / "lake").items()] == [(".", 6)]


async def test_the_date_is_the_day_received_else_now(tmp_path: Path) -> None:
    late = {**events.track(message_id="m1"), "receivedAt": "2026-12-01T00:00:01.000Z"}
    timeless = events.track(message_id="m2")
    for field in ("receivedAt", "timestamp", "originalTimestamp", "sentAt"):
        del timeless[field]
    async with file_destination(tmp_path, tmp_path / "lake", partition_by=("date",)) as lake:
        await lake.deliver(events.deliveries([late, timeless]))
    assert set(jsonl_by_dir(tmp_path / "lake")) == {"date=2026-12-01", "date=2026-11-29"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Order Completed", "order_completed"),
        ("checkout.step_2 / viewed", "checkout_step_2_viewed"),
        ("../../etc/passwd", "etc_passwd"),
        ("a=b", "a_b"),
        ("Größe Gewählt", "größe_gewählt"),
        ("  ", "unknown"),
        ("x" * 100, "x" * 64),
    ],
)
def test_partition_values_are_slugged(name: str, expected: str) -> None:
    assert slug(name) == expected


async def test_gzip_jsonl_appends_one_gzip_member_per_call(tmp_path: Path) -> None:
    first, second = events.sample(3, prefix="a"), events.sample(2, prefix="b")
    async with file_destination(tmp_path, tmp_path / "lake", partition_by=(), compression="gzip") as lake:
        await lake.deliver(events.deliveries(first))
        await lake.deliver(events.deliveries(second))
    [path] = data_files(tmp_path / "lake")
    assert path.name.endswith(".jsonl.gz")
    assert [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()] == first + second


async def test_jsonl_files_rotate_before_exceeding_max_file_bytes(tmp_path: Path) -> None:
    sent = events.sample(8, types=["track"])
    line = len(msgspec.json.encode(sent[0])) + 1
    limit = 2 * line + 10  # two lines fit, three do not
    async with file_destination(tmp_path, tmp_path / "lake", partition_by=(), max_file_bytes=limit) as lake:
        for item in events.deliveries(sent[:3]):
            await lake.deliver([item])  # one per call
        await lake.deliver(events.deliveries(sent[3:]))  # one call across several files
    files = data_files(tmp_path / "lake")
    assert all(p.stat().st_size <= limit for p in files)
    assert len(files) == 4
    assert sorted(e["messageId"] for e in jsonl_by_dir(tmp_path / "lake")["."]) == [e["messageId"] for e in sent]


async def test_jsonl_files_rotate_after_max_file_seconds(tmp_path: Path) -> None:
    clock = FakeClock(START)
    sent = events.sample(3, types=["track"])
    async with file_destination(tmp_path, tmp_path / "lake", clock, partition_by=(), max_file_seconds=60) as lake:
        await lake.deliver([events.delivery(sent[0])])
        clock.now += 59
        await lake.deliver([events.delivery(sent[1])])
        assert len(data_files(tmp_path / "lake")) == 1
        clock.now += 1
        await lake.deliver([events.delivery(sent[2])])
    files = data_files(tmp_path / "lake")
    assert [p.name[:21] for p in files] == ["part-20261129T090000Z", "part-20261129T090100Z"]
    assert [len(p.read_bytes().splitlines()) for p in files] == [2, 1]


async def test_a_failed_write_is_a_retry_and_leaves_no_partial_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = (events.delivery(e) for e in events.sample(3, types=["track"]))

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async with file_destination(tmp_path, tmp_path / "lake", partition_by=()) as lake:
        assert (await lake.deliver([first]))[0].kind == "delivered"
        with monkeypatch.context() as patch:
            patch.setattr(storage_module.os, "fsync", disk_full)
            [outcome] = await lake.deliver([second])
        assert outcome.kind == "retry"
        assert outcome.error == f"cannot write to {tmp_path / 'lake'}: OSError: [Errno 28] No space left on device"
        assert (await lake.deliver([third]))[0].kind == "delivered"
    contents = sorted(p.read_bytes() for p in data_files(tmp_path / "lake"))
    assert contents == sorted([msgspec.json.encode(first.payload) + b"\n", msgspec.json.encode(third.payload) + b"\n"])


async def test_an_unwritable_target_is_a_retry(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    async with file_destination(tmp_path, tmp_path / "blocker" / "lake") as lake:
        [outcome] = await lake.deliver([events.delivery(events.track())])
    assert outcome.kind == "retry"
    assert outcome.error.startswith(f"cannot write to {tmp_path / 'blocker' / 'lake'}/date=2026-11-29/")


async def test_an_event_that_is_not_json_fails_alone(tmp_path: Path) -> None:
    bad = events.delivery(events.track(message_id="bad"), payload={"x": object()})
    good = events.delivery(events.track(message_id="good"))
    async with file_destination(tmp_path, tmp_path / "lake") as lake:
        outcomes = await lake.deliver([bad, good])
    assert [o.kind for o in outcomes] == ["failed", "delivered"]
    assert "cannot be encoded as jsonl" in outcomes[0].error


async def test_parquet_rows_have_the_stable_schema(tmp_path: Path) -> None:
    sent = events.sample(12)
    async with file_destination(tmp_path, tmp_path / "lake", format="parquet", compression="zstd") as lake:
        outcomes = await lake.deliver(events.deliveries(sent))
    assert [o.kind for o in outcomes] == ["delivered"] * 12
    table = ds.dataset(tmp_path / "lake", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 12
    rows = {r["message_id"]: r for r in table.to_pylist()}
    order = rows["evt-000000"]
    assert (order["event_type"], order["event_name"], order["user_id"], order["anonymous_id"]) == (
        "track",
        "Order Completed",
        "user-0000",
        "anon-0000",
    )
    assert order["timestamp"] == datetime(2026, 11, 29, 2, 30, 3, 123000, tzinfo=UTC)
    assert json.loads(order["properties"]) == sent[0]["properties"]
    assert json.loads(order["context"]) == sent[0]["context"]
    assert json.loads(order["extra"]) == {"integrations": {}}
    assert (order["date"], order["event"]) == ("2026-11-29", "order_completed")  # the Hive partition columns
    group = rows["evt-000004"]
    assert (group["group_id"], json.loads(group["traits"])["industry"]) == ("org-0001", "Retail")
    assert rows["evt-000005"]["previous_id"] == sent[5]["previousId"]
    [path] = [p for p in data_files(tmp_path / "lake") if "event=track" in str(p) or "order" in str(p)]
    schema = pq.read_schema(path)
    assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("properties").type == pa.string()
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


async def test_parquet_writes_one_complete_file_per_call_and_partition(tmp_path: Path) -> None:
    async with file_destination(tmp_path, tmp_path / "lake", format="parquet", partition_by=("type",)) as lake:
        await lake.deliver(events.deliveries(events.sample(4, types=["track", "page"], prefix="a")))
        await lake.deliver(events.deliveries(events.sample(2, types=["track"], prefix="b")))
    files = data_files(tmp_path / "lake")
    assert [(p.parent.name, pq.read_metadata(p).num_rows) for p in files] == [
        ("type=page", 2),
        *sorted([("type=track", 2), ("type=track", 2)]),
    ]
    assert all(p.suffix == ".parquet" and not p.name.startswith(".") for p in files)
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "SNAPPY"


async def test_parquet_splits_a_batch_larger_than_max_file_bytes(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"format": "parquet", "partition_by": (), "max_file_bytes": 2048}
    async with file_destination(tmp_path, tmp_path / "lake", **settings) as lake:
        await lake.deliver(events.deliveries(events.sample(6, types=["track"])))
    files = data_files(tmp_path / "lake")
    assert len(files) > 1
    assert sum(pq.read_metadata(p).num_rows for p in files) == 6


async def test_a_file_url_is_a_local_directory(tmp_path: Path) -> None:
    async with file_destination(tmp_path, (tmp_path / "lake").as_uri(), partition_by=()) as lake:
        await lake.deliver([events.delivery(events.track())])
    assert jsonl_by_dir(tmp_path / "lake") == {".": [events.track()]}


async def test_memory_fsspec_jsonl_gets_one_object_per_call(tmp_path: Path, memory_url: str) -> None:
    first, second = events.sample(3, types=["track"], prefix="a"), events.sample(2, types=["track"], prefix="b")
    async with file_destination(tmp_path, memory_url, compression="gzip") as lake:
        await lake.deliver(events.deliveries(first))
        await lake.deliver(events.deliveries(second))
    fs, root = fsspec.core.url_to_fs(memory_url)
    paths = fs.find(root)
    assert len(paths) == 2
    assert {p.rsplit("/", 3)[1:3][0] for p in paths} == {"date=2026-11-29"}
    assert all("/event=order_completed/part-" in p and p.endswith(".jsonl.gz") for p in paths)
    lines = [json.loads(line) for p in paths for line in gzip.decompress(fs.cat_file(p)).splitlines()]
    assert sorted(lines, key=lambda e: e["messageId"]) == first + second


async def test_memory_fsspec_parquet_reads_back(tmp_path: Path, memory_url: str) -> None:
    sent = events.sample(6)
    async with file_destination(tmp_path, memory_url, format="parquet", partition_by=("type",)) as lake:
        await lake.deliver(events.deliveries(sent))
    fs, root = fsspec.core.url_to_fs(memory_url)
    table = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("message_id").to_pylist()) == [e["messageId"] for e in sent]


def test_capabilities_follow_the_settings() -> None:
    local = FileDestination.capabilities_for(FileSettings(path="/tmp/lake"))
    assert (local.concurrency, local.mappable) == (1, True)
    parquet = FileDestination.capabilities_for(FileSettings(path="/tmp/lake", format="parquet"))
    assert (parquet.batch_size, parquet.mappable) == (5000, False)
    assert parquet.batch_age_seconds >= 1
    remote = FileDestination.capabilities_for(FileSettings(path="memory://bucket/lake"))
    assert (remote.batch_size, remote.mappable, remote.deletes) == (5000, True, True)  # files are rewritten


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"format": "parquet", "compression": "gzip"}, "does not apply to parquet"),
        ({"compression": "zstd"}, "does not apply to jsonl"),
        ({"partition_by": ["date", "date"]}, "twice"),
        ({"partition_by": ["month"]}, "partition_by"),
        ({"format": "csv"}, "format"),
        ({"max_file_bytes": 10}, "max_file_bytes"),
        ({"max_file_seconds": 0}, "max_file_seconds"),
        ({"rotate": True}, "unknown field"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({"path": "/tmp/lake", **settings}, FileSettings)


async def test_check_creates_and_writes_nothing(tmp_path: Path, memory_url: str) -> None:
    for path in (str(tmp_path / "new" / "lake"), memory_url):
        destination = FileDestination(FileSettings(path=path), DestinationContext("d", "lake", tmp_path))
        await destination.check()
    assert not (tmp_path / "new").exists()
    fs, root = fsspec.core.url_to_fs(memory_url)
    assert not fs.exists(root)


@pytest.mark.parametrize(
    ("path", "message"),
    [("blocker/lake", "is not a directory"), ("nosuchprotocol://bucket/lake", "not a usable fsspec URL")],
)
async def test_check_explains_a_bad_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, message: str
) -> None:
    (tmp_path / "blocker").write_text("")
    monkeypatch.chdir(tmp_path)
    destination = FileDestination(FileSettings(path=path), DestinationContext("d", "lake", tmp_path))
    with pytest.raises(ConfigError, match=message):
        await destination.check()
