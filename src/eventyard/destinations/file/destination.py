"""The file destination: events as JSON lines or Parquet files in Hive-style partitions.

An event is reported ``delivered`` only once its bytes are durably at the target: fsynced
on a local disk, or in a closed (complete) object on an fsspec filesystem. See ``storage``
for how each kind of target gets there, and ``formats`` for the Parquet schema.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import msgspec

from eventyard.destinations.base import (
    Capabilities,
    DeleteSubject,
    DeliveryEvent,
    Destination,
    DestinationContext,
    Outcome,
)
from eventyard.destinations.file import erase, formats
from eventyard.destinations.file.partitions import partition_of
from eventyard.destinations.file.settings import FileSettings
from eventyard.destinations.file.storage import LocalStore, RemoteStore, split_by_size
from eventyard.errors import ConfigError, Unavailable

#: ``(index in the batch, line bytes or Parquet row, size in bytes)``
Item = tuple[int, Any, int]

EXTENSIONS = {("jsonl", "none"): ".jsonl", ("jsonl", "gzip"): ".jsonl.gz"}


def local_root(path: str) -> Path | None:
    """The directory of a local ``path`` (plain or ``file://``), or ``None`` for other fsspec URLs."""
    if "://" not in path:
        return Path(path).expanduser().absolute()
    parts = urlsplit(path)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"`path` {path!r}: file:// URLs name a local path (file:///dir), not a host")
    return Path(unquote(parts.path))


def appends(settings: FileSettings) -> bool:
    """Whether this destination appends to open files (local JSONL) rather than writing whole files."""
    return settings.format == "jsonl" and local_root(settings.path) is not None


class FileDestination(Destination):
    """Writes events to JSONL or Parquet files, partitioned into Hive-style directories."""

    name: ClassVar[str] = "file"
    Settings: ClassVar[type[msgspec.Struct]] = FileSettings
    #: Local JSONL: appends to open files, one writer at a time.
    capabilities: ClassVar[Capabilities] = Capabilities(
        batch_size=1000, batch_bytes=8 * 1024 * 1024, batch_age_seconds=1.0, concurrency=1, deletes=True
    )
    #: Whole files per call (Parquet, object stores): large batches, so files are not tiny.
    whole_file_capabilities: ClassVar[Capabilities] = Capabilities(
        batch_size=5000, batch_bytes=32 * 1024 * 1024, batch_age_seconds=5.0, concurrency=2, deletes=True
    )

    settings: FileSettings

    def __init__(self, settings: Any, context: DestinationContext) -> None:
        super().__init__(settings, context)
        self._store: LocalStore | RemoteStore | None = None
        self._lock = asyncio.Lock()
        #: What the last ``delete_user`` changed (``files_rewritten``, ``rows``, ...).
        self.deleted: dict[str, int] = {}

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        s: FileSettings = settings
        if appends(s):
            return cls.capabilities
        # Parquet rows follow the event schema, so a mapping's payload cannot shape them.
        return msgspec.structs.replace(cls.whole_file_capabilities, mappable=s.format == "jsonl")

    @property
    def extension(self) -> str:
        return EXTENSIONS.get((self.settings.format, self.settings.codec), ".parquet")

    async def start(self) -> None:
        if self._store is not None:
            return
        if self.settings.format == "parquet":
            _require_pyarrow()
        root = local_root(self.settings.path)
        clock = self.context.clock
        if root is not None:
            self._store = LocalStore(
                root,
                clock,
                self.extension,
                self.settings.max_file_bytes,
                self.settings.max_file_seconds,
                gzip_members=self.settings.codec == "gzip",
            )
        else:
            fs, fs_root = _filesystem(self.settings.path)
            self._store = RemoteStore(fs, fs_root, clock, self.extension)

    async def close(self) -> None:
        async with self._lock:
            store, self._store = self._store, None
            if isinstance(store, LocalStore):
                await asyncio.to_thread(store.close)

    async def check(self) -> None:
        """Verify the target can be written (nothing is created or written)."""
        if self.settings.format == "parquet":
            _require_pyarrow()
        root = local_root(self.settings.path)
        if root is not None:
            _check_local(root)
            return
        fs, fs_root = _filesystem(self.settings.path)
        try:
            await asyncio.to_thread(fs.exists, fs_root)
        except Exception as exc:
            raise Unavailable(f"cannot reach {self.settings.path}: {type(exc).__name__}: {exc}") from None

    async def deliver(self, batch: Sequence[DeliveryEvent]) -> list[Outcome]:
        outcomes: list[Outcome] = [Outcome.failed("internal error: no outcome")] * len(batch)
        groups: dict[tuple[str, ...], list[Item]] = {}
        for i, item in enumerate(batch):
            try:
                value, size = self._encode(item)
            except (TypeError, ValueError, OverflowError) as exc:
                outcomes[i] = Outcome.failed(f"the event cannot be encoded as {self.settings.format}: {exc}")
                continue
            partition = partition_of(self.settings.partition_by, item.event, self.context.clock, item.source_id)
            groups.setdefault(partition, []).append((i, value, size))
        if not groups:
            return outcomes
        if self._store is None:
            await self.start()
        if isinstance(self._store, LocalStore) and self.settings.format == "jsonl":
            async with self._lock:  # open files are shared state: one writer at a time
                results = await asyncio.to_thread(self._write, groups)
        else:  # every call writes its own files
            results = await asyncio.to_thread(self._write, groups)
        for indices, error in results:
            outcome = Outcome.delivered() if error is None else Outcome.retry(error)
            for i in indices:
                outcomes[i] = outcome
        return outcomes

    async def delete_user(self, subject: DeleteSubject) -> Outcome:
        """Rewrite every file that holds the user's lines or rows without them (see ``erase``).

        Open local files are finished first, so the user's latest lines are in finished files;
        ``anonymousId`` identifiers (``anonymousId``, ``anonymousId.2``, ...) are erased too.
        """
        anonymous = frozenset(v for k, v in subject.identifiers.items() if k.split(".")[0] == "anonymousId" and v)
        match = erase.Matcher(subject.user_id, anonymous)
        codec = self.settings.codec
        async with self._lock:
            if self._store is None:
                await self.start()
            store = self._store
            try:
                if isinstance(store, LocalStore):
                    await asyncio.to_thread(store.close)
                    result = await asyncio.to_thread(erase.erase_local, store.root, self.extension, match, codec)
                else:
                    fs, fs_root = _filesystem(self.settings.path)
                    result = await asyncio.to_thread(erase.erase_remote, fs, fs_root, self.extension, match, codec)
            except OSError as exc:
                return Outcome.retry(f"erasing the user's lines failed: {type(exc).__name__}: {exc}")
        self.deleted = result.counts()
        return Outcome.delivered()

    def _encode(self, item: DeliveryEvent) -> tuple[Any, int]:
        if self.settings.format == "jsonl":
            line = formats.jsonl_line(item.payload)
            return line, len(line)
        row = formats.parquet_row(item.event)
        row["message_id"] = item.message_id
        return row, formats.row_size(row)

    def _write(self, groups: dict[tuple[str, ...], list[Item]]) -> list[tuple[list[int], str | None]]:
        """Write every group (in a worker thread); per run of events, the error or ``None``."""
        store = self._store
        if store is None:
            return [([i for i, _, _ in items], "the destination is closed") for items in groups.values()]
        results: list[tuple[list[int], str | None]] = []
        if isinstance(store, LocalStore) and self.settings.format == "jsonl":
            store.finish_expired()
            for partition, items in groups.items():
                error = _attempt(store.append, partition, [v for _, v, _ in items])
                results.append(([i for i, _, _ in items], self._error(partition, error)))
            return results
        for partition, items in groups.items():
            for chunk in split_by_size(items, self.settings.max_file_bytes):
                error = _attempt(self._put, store, partition, [v for _, v, _ in chunk])
                results.append(([i for i, _, _ in chunk], self._error(partition, error)))
        return results

    def _put(self, store: LocalStore | RemoteStore, partition: tuple[str, ...], values: list[Any]) -> None:
        """Write ``values`` as one whole file."""
        if self.settings.format == "parquet":
            data = formats.parquet_file(values, self.settings.codec)
        else:
            data = b"".join(values)
            if self.settings.codec == "gzip":
                data = gzip.compress(data, mtime=0)
        store.put(partition, data)

    def _error(self, partition: tuple[str, ...], error: str | None) -> str | None:
        if error is None:
            return None
        where = "/".join((self.settings.path.rstrip("/"), *partition))
        return f"cannot write to {where}: {error}"


def _attempt(write: Callable[..., object], *args: Any) -> str | None:
    try:
        write(*args)
    except Exception as exc:  # any storage failure is worth a retry; its text goes into the outcome
        return f"{type(exc).__name__}: {exc}"
    return None


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("format `parquet` needs pyarrow: pip install pyarrow") from None


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ConfigError(f"`path` {url!r} needs fsspec: pip install fsspec") from None
    try:
        fs, root = url_to_fs(url)
    except ImportError as exc:
        raise ConfigError(f"`path` {url!r} needs an fsspec driver that is not installed: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"`path` {url!r} is not a usable fsspec URL: {exc}") from None
    return fs, str(root)


def _check_local(root: Path) -> None:
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"`path` {str(root)!r}: {str(probe)!r} exists and is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "the directory" if probe == root else f"{str(probe)!r}, where it would be created,"
        raise ConfigError(f"`path` {str(root)!r}: {what} is not writable by this process")
