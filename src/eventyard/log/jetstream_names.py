"""Names and framing of the JetStream log: stream, subjects, consumers, record bytes.

One stream per log (``<prefix>_log``) holds every topic, so a record's id is the stream
sequence: one increasing number across all topics, like the SQLite log's ids (the live view
follows several topics with one cursor).

Subjects: ``<prefix>.<topic>.p.<partition>`` for records to process (the partition is a hash of
the record's key, so one user's records share a subject) and ``<prefix>.<topic>.a`` for
archived records nobody processes. Characters a subject token cannot hold are %-escaped.

A message's body is a frame: appended-at (float64), key length (uint32), key, payload. The key
and time travel inside the body rather than in headers, so any key is allowed and reading a
record back needs no header parsing.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

from eventyard.errors import ConfigError

#: Subjects per topic for records with a key (a fixed hash space; see docs/ARCHITECTURE.md).
PARTITIONS = 16
_HEAD = struct.Struct("!dI")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-:]")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ConfigError(
            f"log prefix {prefix!r} must start with a letter and hold only letters, digits and `_` (at most 41)"
        )
    return prefix


def _token(topic: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), topic)


def partition(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS if key else 0


class Names:
    """Every JetStream and PostgreSQL name derived from one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = check_prefix(prefix)
        self.stream = f"{prefix}_log"
        #: PostgreSQL schema of the log's index (queue state, traces).
        self.schema = f"{prefix.lower()}_log"

    def live(self, topic: str, key: str) -> str:
        return f"{self.prefix}.{_token(topic)}.p.{partition(key)}"

    def archive(self, topic: str) -> str:
        return f"{self.prefix}.{_token(topic)}.a"

    def live_filter(self, topic: str) -> str:
        return f"{self.prefix}.{_token(topic)}.p.>"

    def topic_filter(self, topic: str, key: str | None = None) -> str:
        """Every record of ``topic``; with ``key`` only the partition that can hold it."""
        if key is not None:
            return self.live(topic, key)
        return f"{self.prefix}.{_token(topic)}.>"

    def topic_of(self, subject: str) -> str:
        """The topic a subject belongs to (the inverse of the escaping above)."""
        token = subject.split(".")[1]
        return unquote_to_bytes(token).decode()

    def intake(self, topic: str) -> str:
        """The durable consumer that moves a topic's new records into the queue index."""
        return f"{self.prefix}_in_{hashlib.sha1(topic.encode()).hexdigest()[:20]}"

    def subjects(self) -> list[str]:
        return [f"{self.prefix}.>"]


def frame(at: float, key: str, payload: bytes) -> bytes:
    k = key.encode()
    return _HEAD.pack(at, len(k)) + k + payload


def unframe(data: bytes) -> tuple[float, str, bytes]:
    """(appended_at, key, payload) of a message body."""
    at, n = _HEAD.unpack_from(data)
    start = _HEAD.size
    return at, data[start : start + n].decode(), data[start + n :]


class LogUrl:
    """``nats://host:4222[,nats://host2:4222][?prefix=name&replicas=3&max_lease=60]``.

    ``max_lease``: no lease lasts longer than this many seconds, whatever the caller asked, so
    a dead process's work is taken over within it (keep it above the slowest delivery).
    """

    def __init__(self, url: str) -> None:
        servers: list[str] = []
        query: dict[str, str] = {}
        for part in url.split(","):
            parts = urlsplit(part.strip())
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ConfigError(
                    f"log URL {url!r} is not a NATS URL; expected nats://host:4222 "
                    "(several servers separated by commas, options ?prefix=name&replicas=N)"
                )
            query.update(parse_qsl(parts.query))
            servers.append(parts._replace(query="").geturl())
        unknown = set(query) - {"prefix", "replicas", "max_lease"}
        if unknown:
            raise ConfigError(
                f"log URL {url!r}: unknown option(s) {sorted(unknown)}; known: prefix, replicas, max_lease"
            )
        self.servers = servers
        self.prefix = check_prefix(query.get("prefix", "eventyard"))
        try:
            self.replicas = int(query.get("replicas", "1"))
        except ValueError:
            raise ConfigError(f"log URL {url!r}: replicas must be a number (1, 3 or 5)") from None
        if self.replicas not in (1, 2, 3, 4, 5):
            raise ConfigError(f"log URL {url!r}: replicas must be between 1 and 5, got {self.replicas}")
        try:
            self.max_lease = float(query["max_lease"]) if "max_lease" in query else None
        except ValueError:
            raise ConfigError(f"log URL {url!r}: max_lease must be a number of seconds") from None
        if self.max_lease is not None and self.max_lease < 1:
            raise ConfigError(f"log URL {url!r}: max_lease must be at least 1 second")
