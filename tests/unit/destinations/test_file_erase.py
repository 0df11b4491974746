"""Erasing a user from a file destination: JSONL (plain and gzip, local appends), Parquet, and
an fsspec target; files are rewritten without the user's lines or removed when nothing is left."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from eventyard.destinations.base import DeleteSubject, DeliveryEvent, DestinationContext
from eventyard.destinations.file.destination import FileDestination
from eventyard.destinations.file.settings import FileSettings
from eventyard.testing.clock import FakeClock


def event(n: int, user: str | None, anonymous: str | None = None, source: str = "web") -> DeliveryEvent:
    body: dict[str, Any] = {
        "type": "track",
        "event": "Viewed",
        "messageId": f"m{n}",
        "timestamp": "2026-01-02T03:04:05Z",
    }
    if user is not None:
        body["userId"] = user
    if anonymous is not None:
        body["anonymousId"] = anonymous
    return DeliveryEvent(body, body, f"m{n}", source_id=source)


BATCH = [event(1, "ana"), event(2, "bob"), event(3, None, "ana-device"), event(4, None, "bob-device")]


async def destination(tmp_path: Path, **settings: Any) -> FileDestination:
    dest = FileDestination(
        FileSettings(**settings), DestinationContext("dst", "files", tmp_path / "state", FakeClock(1.8e9))
    )
    await dest.start()
    return dest


def lines(root: Path, suffix: str) -> list[str]:
    out = []
    for path in sorted(root.rglob(f"*{suffix}")):
        data = path.read_bytes()
        text = gzip.decompress(data) if suffix.endswith(".gz") else data
        out += [line for line in text.decode().splitlines() if line]
    return out


@pytest.mark.parametrize("codec", ["none", "gzip"])
async def test_jsonl_files_lose_the_users_lines(tmp_path: Path, codec: str) -> None:
    root = tmp_path / "out"
    dest = await destination(tmp_path, path=str(root), compression=codec, partition_by=("source",))
    suffix = ".jsonl.gz" if codec == "gzip" else ".jsonl"
    await dest.deliver(BATCH)
    await dest.deliver([event(5, "ana", source="app")])  # an open file of another partition
    outcome = await dest.delete_user(DeleteSubject("ana", {"anonymousId": "ana-device", "email": "a@b.c"}))
    assert outcome.kind == "delivered"
    assert dest.deleted == {"files_scanned": 2, "files_rewritten": 1, "files_removed": 1, "rows": 3}
    assert ['"m2"' in line or '"m4"' in line for line in lines(root, suffix)] == [True, True]
    await dest.deliver([event(6, "bob")])  # appends go on in a new file
    assert len(lines(root, suffix)) == 3
    again = await dest.delete_user(DeleteSubject("ana"))
    assert again.kind == "delivered" and dest.deleted["rows"] == 0
    await dest.close()


async def test_parquet_files_lose_the_users_rows(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    dest = await destination(tmp_path, path=str(root), format="parquet")
    await dest.deliver(BATCH)
    (path,) = root.rglob("*.parquet")
    outcome = await dest.delete_user(DeleteSubject("bob", {"anonymousId": "bob-device"}))
    assert outcome.kind == "delivered" and dest.deleted["rows"] == 2
    table = pq.read_table(io.BytesIO(path.read_bytes()))
    assert table["message_id"].to_pylist() == ["m1", "m3"]
    assert table.schema.metadata == {b"eventyard.schema": b"events/1"}
    await dest.close()


async def test_an_fsspec_target_is_rewritten_too(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    dest = await destination(tmp_path, path="memory://erase-test/events")
    await dest.deliver(BATCH)
    outcome = await dest.delete_user(DeleteSubject("bob", {"anonymousId": "bob-device"}))
    assert outcome.kind == "delivered" and dest.deleted["rows"] == 2
    fs = fsspec.filesystem("memory")
    text = b"".join(fs.cat_file(p) for p in fs.find("/erase-test/events")).decode()
    assert '"m1"' in text and '"m3"' in text and '"m2"' not in text and '"m4"' not in text
    fs.rm("/erase-test", recursive=True)
    await dest.close()


def test_file_destinations_declare_deletes() -> None:
    assert FileDestination.capabilities_for(FileSettings(path="/tmp/x")).deletes
    assert FileDestination.capabilities_for(FileSettings(path="/tmp/x", format="parquet")).deletes
