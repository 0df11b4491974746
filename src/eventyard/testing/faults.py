"""Fault injection for HTTP destinations: a recorder that answers from a per-request plan.

Each builder returns one :class:`~eventyard.testing.recorder.Answer`; a plan is a sequence
of them, used one per request in arrival order, after which the server answers ``default``
(200). For example, "fail the first two requests with 503, then succeed"::

    async with FaultServer(*fail_first(2, error(503))) as server:
        ...

    async with FaultServer(throttled(retry_after=30), reset(), hang()) as server:
        ...  # 429 + Retry-After: 30, then a connection reset, then no answer at all

A timeout is an answer slower than the client's timeout: ``hang()`` never answers (until the
server stops), ``slow(seconds)`` answers late.
"""

from __future__ import annotations

from eventyard.testing.recorder import Answer, RecordedRequest, ThreadedRecorder, WebhookRecorder


def ok(status: int = 200, body: bytes | str = b"") -> Answer:
    return Answer(status=status, body=_bytes(body))


def error(status: int = 500, body: bytes | str = b"", headers: dict[str, str] | None = None) -> Answer:
    """An HTTP error answer (4xx or 5xx)."""
    return Answer(status=status, body=_bytes(body), headers=dict(headers or {}))


def throttled(retry_after: float | str = 1, status: int = 429) -> Answer:
    """429 (or 503) with a ``Retry-After`` header: seconds, or an HTTP date as a string."""
    value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    return Answer(status=status, headers={"Retry-After": value})


def slow(seconds: float, then: Answer | None = None) -> Answer:
    """Answer ``then`` (200) after ``seconds``."""
    base = then or Answer()
    return Answer(status=base.status, body=base.body, headers=base.headers, delay=seconds, reset=base.reset)


def hang() -> Answer:
    """Never answer; the client's timeout fires (the server releases it when it stops)."""
    return Answer(hang=True)


def reset() -> Answer:
    """Reset the connection after reading the request, without any answer."""
    return Answer(reset=True)


def fail_first(count: int, failure: Answer | None = None) -> list[Answer]:
    """A plan where the first ``count`` requests get ``failure`` (500); later ones the default."""
    return [failure or error(500)] * count


class FaultServer(WebhookRecorder):
    """A :class:`WebhookRecorder` whose constructor takes the plan: ``FaultServer(error(503), ok())``."""


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


__all__ = [
    "Answer",
    "FaultServer",
    "RecordedRequest",
    "ThreadedRecorder",
    "error",
    "fail_first",
    "hang",
    "ok",
    "reset",
    "slow",
    "throttled",
]
