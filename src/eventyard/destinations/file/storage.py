"""Where file content goes, durably, before an event counts as delivered.

Two stores, chosen by the destination's ``path``:

``LocalStore`` (a directory or ``file://``)
    ``append``: JSON lines are appended to an open file per partition, then flushed and
    fsynced before ``append`` returns (a new file's directory entry is fsynced too). A
    file is finished (closed) and a new one started when the next write would take it
    past ``max_file_bytes`` or when it has been open ``max_file_seconds``. If a write
    fails, the file is truncated back to its last good size and abandoned, so no reader
    ever sees a half-written line from a failed call.
    ``put``: a whole file (Parquet) is written to a hidden temporary name, fsynced and
    renamed into place, so it appears complete or not at all.

``RemoteStore`` (any other fsspec URL: ``memory://``, ``s3://`` ...)
    Only ``put``: every call writes whole objects (write, then close). Object stores have
    no append, and a local staging file uploaded later would report events delivered
    before they reach the target; so each ``deliver`` call writes its own objects.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

#: Files kept open at once by ``LocalStore.append``; the least recently used is finished first.
MAX_OPEN_FILES = 64


def file_name(now: float, extension: str) -> str:
    """``part-20261129T023003Z-<12 hex>.jsonl``: sorts by creation time, unique across processes."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"part-{stamp}-{uuid.uuid4().hex[:12]}{extension}"


def split_by_size(items: Sequence[tuple[int, Any, int]], limit: int) -> list[list[tuple[int, Any, int]]]:
    """Consecutive runs of ``(index, value, size)`` items of at most ``limit`` bytes (one item may exceed it)."""
    chunks: list[list[tuple[int, Any, int]]] = []
    current: list[tuple[int, Any, int]] = []
    size = 0
    for item in items:
        if current and size + item[2] > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item[2]
    if current:
        chunks.append(current)
    return chunks


@dataclass
class _OpenFile:
    path: Path
    handle: IO[bytes]
    opened_at: float
    size: int


class LocalStore:
    """A local directory; durability by fsync of files and directories."""

    def __init__(
        self,
        root: Path,
        clock: Callable[[], float],
        extension: str,
        max_file_bytes: int,
        max_file_seconds: float,
        gzip_members: bool = False,
    ) -> None:
        self.root = root
        self.clock = clock
        self.extension = extension
        self.max_file_bytes = max_file_bytes
        self.max_file_seconds = max_file_seconds
        self.gzip_members = gzip_members
        self._open: OrderedDict[tuple[str, ...], _OpenFile] = OrderedDict()

    def append(self, partition: tuple[str, ...], lines: Sequence[bytes]) -> None:
        """Append ``lines`` to the partition's current file, rotating as needed; fsynced on return."""
        pending: list[bytes] = []
        pending_size = 0
        for line in lines:
            current = self._current(partition)
            used = (current.size if current else 0) + pending_size
            if used > 0 and used + len(line) > self.max_file_bytes:
                if pending:
                    self._write(partition, pending)
                    pending, pending_size = [], 0
                self.finish(partition)
            pending.append(line)
            pending_size += len(line)
        if pending:
            self._write(partition, pending)

    def put(self, partition: tuple[str, ...], data: bytes) -> str:
        """Write a whole file atomically: temporary name, fsync, rename, fsync the directory."""
        directory = self._directory(partition)
        name = file_name(self.clock(), self.extension)
        temporary = directory / f".{name}.tmp"
        try:
            with temporary.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, directory / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_dir(directory)
        return str(directory / name)

    def finish_expired(self) -> None:
        """Finish every file that has been open ``max_file_seconds`` or longer."""
        now = self.clock()
        for partition in [p for p, f in self._open.items() if now - f.opened_at >= self.max_file_seconds]:
            self.finish(partition)

    def finish(self, partition: tuple[str, ...]) -> None:
        current = self._open.pop(partition, None)
        if current is not None:
            current.handle.close()

    def close(self) -> None:
        for partition in list(self._open):
            self.finish(partition)

    def _current(self, partition: tuple[str, ...]) -> _OpenFile | None:
        current = self._open.get(partition)
        if current is not None and self.clock() - current.opened_at >= self.max_file_seconds:
            self.finish(partition)
            return None
        return current

    def _write(self, partition: tuple[str, ...], lines: list[bytes]) -> None:
        current = self._open.get(partition)
        if current is None:
            directory = self._directory(partition)
            path = directory / file_name(self.clock(), self.extension)
            current = _OpenFile(path, path.open("xb"), self.clock(), 0)
            self._open[partition] = current
            _fsync_dir(directory)
            while len(self._open) > MAX_OPEN_FILES:
                self.finish(next(iter(self._open)))
        self._open.move_to_end(partition)
        data = b"".join(lines)
        if self.gzip_members:
            data = gzip.compress(data, mtime=0)  # one gzip member per write: the file is always valid
        try:
            current.handle.write(data)
            current.handle.flush()
            os.fsync(current.handle.fileno())
        except BaseException:
            self._abandon(partition, current)
            raise
        current.size += len(data)

    def _abandon(self, partition: tuple[str, ...], current: _OpenFile) -> None:
        """Cut a failed write off the file and stop using the file."""
        self._open.pop(partition, None)
        with contextlib.suppress(OSError):
            current.handle.close()
        with contextlib.suppress(OSError):
            os.truncate(current.path, current.size)

    def _directory(self, partition: tuple[str, ...]) -> Path:
        directory = self.root.joinpath(*partition)
        if not directory.is_dir():
            _makedirs_durably(directory)
        return directory


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durably(directory: Path) -> None:
    """Create missing directories and fsync each new one's parent, so the new entries survive a crash."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(path.parent)


class RemoteStore:
    """An fsspec filesystem; each ``put`` writes one whole object."""

    def __init__(self, fs: Any, root: str, clock: Callable[[], float], extension: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.clock = clock
        self.extension = extension

    def put(self, partition: tuple[str, ...], data: bytes) -> str:
        directory = "/".join((self.root, *partition))
        path = f"{directory}/{file_name(self.clock(), self.extension)}"
        self.fs.makedirs(directory, exist_ok=True)
        self.fs.pipe_file(path, data)
        return path
