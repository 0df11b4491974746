"""Settings of the NATS destination, and the subject template they hold."""

from __future__ import annotations

import re
import string
from typing import Any

import msgspec

from eventyard.destinations.base import Secret

#: Placeholders a subject template may use.
PLACEHOLDERS = frozenset({"type", "event", "source_id"})
_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
_NOT_IN_TOKEN = re.compile(r"[^a-z0-9_-]+")


def _default_servers() -> list[str]:
    return ["nats://127.0.0.1:4222"]


class NatsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings of a NATS destination."""

    #: Subject template, e.g. ``events.{type}``; placeholders ``{type}``, ``{event}`` (the
    #: track event's name, slugged; the type for other calls) and ``{source_id}``.
    subject: str
    servers: list[str] = msgspec.field(default_factory=_default_servers)
    #: Publish with JetStream and wait for the stream's ack (with ``Nats-Msg-Id`` for dedupe).
    jetstream: bool = False
    #: The JetStream stream that must take the messages (checked by the server on publish).
    stream: str | None = None
    #: Create ``stream`` over the template's subjects when it does not exist.
    create_stream: bool = False
    user: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    #: Limit for connecting, and for a flush or a JetStream ack.
    timeout_seconds: float = 5.0
    #: Most events per delivery.
    max_batch_size: int = 100

    def __post_init__(self) -> None:
        check_template(self.subject)
        if not self.servers:
            raise ValueError("`servers` needs at least one URL, e.g. nats://127.0.0.1:4222")
        for url in self.servers:
            if not url.startswith(_SCHEMES):
                raise ValueError(f"server {url!r} must start with one of {', '.join(_SCHEMES)}")
        if (self.stream is not None or self.create_stream) and not self.jetstream:
            raise ValueError("`stream` and `create_stream` need `jetstream: true`")
        if self.create_stream and not self.stream:
            raise ValueError("`create_stream` needs the stream's name in `stream`")
        if self.stream is not None and not re.fullmatch(r"[^\s.*>/\\]+", self.stream):
            raise ValueError(f"invalid stream name {self.stream!r}: no spaces, '.', '*', '>', '/' or '\\'")
        if self.token and (self.user or self.password):
            raise ValueError("use either `token` or `user`/`password`, not both")
        if bool(self.user) != bool(self.password):
            raise ValueError("`user` and `password` go together")
        if not 0 < self.timeout_seconds <= 300:
            raise ValueError("`timeout_seconds` must be more than 0 and at most 300")
        if not 1 <= self.max_batch_size <= 10_000:
            raise ValueError("`max_batch_size` must be between 1 and 10000")


def check_template(template: str) -> None:
    """Raise ``ValueError`` unless ``template`` renders to a valid subject to publish on."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # unbalanced braces
        raise ValueError(f"subject {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"subject {template!r}: unknown placeholder {{{name}}}; use {known}")
        if spec or conversion:
            raise ValueError(f"subject {template!r}: write the placeholder as plain {{{name}}}")
    sample = template.format(type="track", event="order_completed", source_id="src")
    if any(not t or t in ("*", ">") or any(c.isspace() for c in t) for t in sample.split(".")):
        raise ValueError(f"subject {template!r} is not a valid NATS subject: no empty tokens, spaces or wildcards")


def slug(text: str) -> str:
    """``text`` as one subject token: lower case, runs of other characters as ``_``."""
    return _NOT_IN_TOKEN.sub("_", text.lower()).strip("_") or "unnamed"


def render(template: str, event: dict[str, Any], source_id: str) -> str:
    """The subject for one event."""
    kind = slug(str(event.get("type") or "unknown"))
    name = event.get("event") if kind == "track" else None
    return template.format(type=kind, event=slug(str(name)) if name else kind, source_id=slug(source_id or "unknown"))


def pattern(template: str) -> str:
    """A subject pattern covering every subject the template renders to (``events.{type}`` → ``events.*``)."""
    return ".".join("*" if "{" in token else token for token in template.split("."))
