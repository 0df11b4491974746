"""Settings of the file destination."""

from __future__ import annotations

from typing import Literal

import msgspec

PartitionKey = Literal["date", "event", "type", "source"]
Format = Literal["jsonl", "parquet"]
Compression = Literal["none", "gzip", "snappy", "zstd"]

#: Compressions each format allows; the first one is the default.
COMPRESSIONS: dict[str, tuple[str, ...]] = {"jsonl": ("none", "gzip"), "parquet": ("snappy", "zstd", "none")}


class FileSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where and how events are written."""

    #: A local directory, ``file:///...``, or any fsspec URL (``memory://``, ``s3://`` ...).
    path: str
    format: Format = "jsonl"
    #: Hive-style directories, in this order: ``date=2026-11-29/event=order_completed/``.
    partition_by: tuple[PartitionKey, ...] = ("date", "event")
    #: ``none``/``gzip`` for jsonl, ``snappy``/``zstd``/``none`` for parquet; default: the first.
    compression: Compression | None = None
    #: A file is finished and a new one started before it would grow past this size.
    max_file_bytes: int = 128 * 1024 * 1024
    #: ... or once it has been open this long.
    max_file_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise ValueError("`path` must name a directory or an fsspec URL")
        if len(set(self.partition_by)) != len(self.partition_by):
            raise ValueError("`partition_by` names a key twice")
        allowed = COMPRESSIONS[self.format]
        if self.compression is not None and self.compression not in allowed:
            raise ValueError(f"compression {self.compression!r} does not apply to {self.format}; use one of {allowed}")
        if self.max_file_bytes < 1024:
            raise ValueError("`max_file_bytes` must be at least 1024")
        if self.max_file_seconds <= 0:
            raise ValueError("`max_file_seconds` must be more than 0")

    @property
    def codec(self) -> str:
        """The compression in effect."""
        return self.compression or COMPRESSIONS[self.format][0]
