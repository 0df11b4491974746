"""Erasing a user from the files of a file destination (regulations).

Every finished file under the destination's path with the destination's extension is read;
a file that holds lines (JSONL) or rows (Parquet) of the user is written again without them,
under the same name and atomically (a local file goes to a hidden temporary name, is fsynced
and renamed over the old one; an object is replaced by one ``pipe``), and a file left with no
line is removed. Files without the user are not written.

A JSON line belongs to the user when its top-level ``userId``/``user_id`` is the user id or
its ``anonymousId``/``anonymous_id`` is one of the user's anonymous ids (a mapping that moves
these fields elsewhere hides them from the eraser); a Parquet row, by its ``user_id`` and
``anonymous_id`` columns.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

_decode = msgspec.json.decode


class Erased(msgspec.Struct):
    """What an erase changed: files scanned, files rewritten or removed, lines/rows removed."""

    files_scanned: int = 0
    files_rewritten: int = 0
    files_removed: int = 0
    rows: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "files_scanned": self.files_scanned,
            "files_rewritten": self.files_rewritten,
            "files_removed": self.files_removed,
            "rows": self.rows,
        }


class Matcher:
    """Decides whether a JSON object or a Parquet row belongs to the user."""

    def __init__(self, user_id: str, anonymous_ids: frozenset[str]) -> None:
        self.user_id = user_id
        self.anonymous_ids = anonymous_ids

    def _is(self, user: Any, anonymous: Any) -> bool:
        if user is not None and self.user_id and str(user) == self.user_id:
            return True
        return anonymous is not None and str(anonymous) in self.anonymous_ids

    def line(self, line: bytes) -> bool:
        try:
            obj = _decode(line)
        except msgspec.DecodeError:
            return False
        if not isinstance(obj, dict):
            return False
        return self._is(obj.get("userId", obj.get("user_id")), obj.get("anonymousId", obj.get("anonymous_id")))

    def needles(self) -> list[bytes]:
        return [v.encode() for v in (self.user_id, *self.anonymous_ids) if v]


def erase_jsonl(data: bytes, gzipped: bool, match: Matcher) -> tuple[bytes | None, int]:
    """The file content without the user's lines (``None`` when unchanged) and lines removed."""
    text = gzip.decompress(data) if gzipped else data
    if not any(n in text for n in match.needles()):
        return None, 0
    kept: list[bytes] = []
    removed = 0
    for line in text.splitlines(keepends=True):
        if line.strip() and match.line(line):
            removed += 1
        else:
            kept.append(line)
    if not removed:
        return None, 0
    out = b"".join(kept)
    return (gzip.compress(out, mtime=0) if gzipped and out else out), removed


def erase_parquet(data: bytes, match: Matcher, codec: str) -> tuple[bytes | None, int]:
    """The Parquet file without the user's rows (``None`` when unchanged) and rows removed."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(io.BytesIO(data))
    table = source.read()
    columns = set(table.column_names)
    hit = pa.array([False] * table.num_rows)
    if "user_id" in columns and match.user_id:
        hit = pc.or_(hit, pc.fill_null(pc.equal(table["user_id"], match.user_id), False))
    if "anonymous_id" in columns and match.anonymous_ids:
        anonymous = pa.array(sorted(match.anonymous_ids), type=pa.string())
        hit = pc.or_(hit, pc.fill_null(pc.is_in(table["anonymous_id"], value_set=anonymous), False))
    removed = int(pc.sum(hit).as_py() or 0)
    if not removed:
        return None, 0
    kept = table.filter(pc.invert(hit))
    sink = pa.BufferOutputStream()
    pq.write_table(kept, sink, compression=codec)
    out: bytes = sink.getvalue().to_pybytes()
    return (out if kept.num_rows else b""), removed


def _local_files(root: Path, extension: str) -> Iterator[Path]:
    if not root.is_dir():
        return
    for directory, _dirs, names in os.walk(root):
        for name in sorted(names):
            if name.endswith(extension) and not name.startswith("."):
                yield Path(directory) / name


def _replace_local(path: Path, data: bytes) -> None:
    if not data:
        path.unlink(missing_ok=True)
        return
    temporary = path.with_name(f".{path.name}.erase.tmp")
    try:
        with temporary.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _erase_one(data: bytes, extension: str, match: Matcher, codec: str) -> tuple[bytes | None, int]:
    if extension.endswith(".parquet"):
        return erase_parquet(data, match, codec)
    return erase_jsonl(data, extension.endswith(".gz"), match)


def erase_local(root: Path, extension: str, match: Matcher, codec: str) -> Erased:
    """Erase the user from the finished files under a local ``root`` (in a worker thread)."""
    result = Erased()
    for path in _local_files(root, extension):
        result.files_scanned += 1
        new, removed = _erase_one(path.read_bytes(), extension, match, codec)

        def replace(data: bytes, p: Path = path) -> None:
            _replace_local(p, data)

        _record(result, new, removed, replace)
    return result


def erase_remote(fs: Any, root: str, extension: str, match: Matcher, codec: str) -> Erased:
    """Erase the user from the objects under ``root`` of an fsspec filesystem."""
    result = Erased()
    paths = sorted(p for p in fs.find(root) if p.endswith(extension) and not p.rsplit("/", 1)[-1].startswith("."))
    for path in paths:
        result.files_scanned += 1
        new, removed = _erase_one(fs.cat_file(path), extension, match, codec)

        def replace(data: bytes, p: str = path) -> None:
            if data:
                fs.pipe_file(p, data)
            else:
                fs.rm_file(p)

        _record(result, new, removed, replace)
    return result


def _record(result: Erased, new: bytes | None, removed: int, replace: Callable[[bytes], None]) -> None:
    if new is None:
        return
    replace(new)
    result.rows += removed
    if new:
        result.files_rewritten += 1
    else:
        result.files_removed += 1
