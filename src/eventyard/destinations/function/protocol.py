"""What the function destination and its worker process say to each other.

Frames on the worker's stdin and a private copy of its stdout: a 4-byte big-endian length,
then one msgspec-JSON message. The parent sends a ``Load`` first, then ``Call`` after ``Call``;
the worker answers each with exactly one ``Reply``. Nothing else is ever written to the
protocol stream: the worker points its own fd 1 at stderr before user code runs.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO, Literal

import msgspec

#: Event type -> handler name; ``on_batch`` and ``on_delete`` are called directly.
HANDLERS = {
    "track": "on_track",
    "identify": "on_identify",
    "page": "on_page",
    "screen": "on_screen",
    "group": "on_group",
    "alias": "on_alias",
}
HANDLER_NAMES = frozenset([*HANDLERS.values(), "on_delete", "on_batch"])

#: How much of a call's printed and logged output comes back with its reply.
OUTPUT_LIMIT = 4096
#: Largest frame accepted either way (a batch of events, or a reply with many results).
MAX_FRAME_BYTES = 256 * 1024 * 1024

HEADER = struct.Struct(">I")

#: ``retry`` RetryError, ``drop`` DropEvent, ``unsupported`` EventNotSupported (or no handler),
#: ``invalid`` InvalidEventPayload/ValidationError, ``error`` any other exception,
#: ``status`` an on_batch result ``{"status": ..., "errormessage": ...}``.
Category = Literal["retry", "drop", "unsupported", "invalid", "error", "status"]


class Load(msgspec.Struct, tag="load", frozen=True):
    """Import the user's module (a file path or a module name) and keep its handlers."""

    module: str
    is_path: bool
    settings: dict[str, Any]
    #: Address-space limit of the worker process in MiB (``None``: no limit).
    memory_limit_mb: int | None = None


class Call(msgspec.Struct, tag="call", frozen=True):
    """Call one handler with ``arg`` (an event, or for ``on_batch`` a list of events)."""

    handler: str
    arg: Any


Request = Load | Call


class Failure(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why a call (or one event of a batch) did not succeed."""

    category: Category
    type: str
    message: str = ""
    #: ``file:line in function`` where the exception was raised, for unexpected errors.
    where: str = ""
    #: The status of an on_batch result dict.
    status: int | None = None

    def text(self) -> str:
        out = f"{self.type}: {self.message}" if self.message else self.type
        return f"{out} (at {self.where})" if self.where else out


class Reply(msgspec.Struct, frozen=True, omit_defaults=True):
    #: The handlers the module defines (answer to ``Load``).
    handlers: list[str] = []
    #: The whole call failed (or the module did not load).
    error: Failure | None = None
    #: Per-event results of ``on_batch`` (``None`` = delivered), when it returned a list.
    results: list[Failure | None] | None = None
    #: The tail of what the call printed or logged.
    output: str = ""
    #: The worker is in a doubtful state (e.g. after MemoryError): start a fresh one.
    restart: bool = False


_encoder = msgspec.json.Encoder()
request_decoder: msgspec.json.Decoder[Load | Call] = msgspec.json.Decoder(Request)
reply_decoder = msgspec.json.Decoder(Reply)


def frame(message: Request | Reply) -> bytes:
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


def body_size(header: bytes) -> int:
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {size} bytes is over the limit of {MAX_FRAME_BYTES}")
    return int(size)


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's body from a blocking stream; ``None`` at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    size = body_size(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body
