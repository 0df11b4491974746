"""Erasing a user's events from the event log: what ``EventLog.forget`` is asked to do.

The log holds a user's data in these topics:

* ``ingest``: one record per request, holding the events the client sent (``spec.stored``).
  A record whose events are all the user's is deleted; one that also holds other users'
  events is rewritten without the user's (the request's envelope stays; made-up messageIds
  are renumbered to the kept events' positions).
* ``rejected``: refused events (kept for the live view); a refusal that holds the user's
  event, or whose excerpt mentions one of the ids, is deleted.
* ``deliver.<destination>``: delivery jobs, queued, waiting for a retry, dead-lettered or
  delivered and retained; the user's jobs are deleted, so they are never sent again.
* any other topic whose records are JSON objects with ``userId``/``anonymousId`` at the top
  or in an ``event`` object: such records of the user are deleted.

An event is the user's when its ``userId`` is one of ``user_ids`` or its ``anonymousId`` (or
an alias call's ``previousId``) is one of ``user_ids`` or ``anonymous_ids``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec

from eventyard.log import topics
from eventyard.log.base import ForgetCount, LogRecord, Rewrite

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class Subject:
    """Whose data to erase: user ids and the anonymous ids linked to them."""

    def __init__(self, user_ids: Iterable[str], anonymous_ids: Iterable[str] = ()) -> None:
        self.user_ids = frozenset(user_ids)
        self.anonymous_ids = frozenset(anonymous_ids)
        self._any = self.user_ids | self.anonymous_ids

    def needles(self) -> list[bytes]:
        """Byte strings at least one of which is in any payload that holds the subject: each id
        as UTF-8 and, when different, as JSON writes it with non-ASCII characters escaped."""
        out: dict[bytes, None] = {}
        for value in sorted(self._any):
            out[value.encode()] = None
            escaped = json.dumps(value)[1:-1].encode()
            out[escaped] = None
        return list(out)

    def owns(self, event: Any) -> bool:
        if not isinstance(event, dict):
            return False
        user, anonymous, previous = event.get("userId"), event.get("anonymousId"), event.get("previousId")
        if user is not None and str(user) in self.user_ids:
            return True
        if anonymous is not None and str(anonymous) in self._any:
            return True
        return previous is not None and str(previous) in self._any

    def mentioned_in(self, text: str) -> bool:
        return any(value in text for value in self._any)


def rewrite_for(subject: Subject, source_id: str = "") -> Rewrite:
    """The ``rewrite`` function for ``EventLog.forget``; with ``source_id``, only records of
    that source are changed (ingest records and refusals are keyed by source, delivery jobs
    carry ``source_id``)."""

    def rewrite(record: LogRecord) -> bytes | None:
        if source_id and record.topic in (topics.INGEST, topics.REJECTED) and record.key != source_id:
            return record.payload
        try:
            value = _decode(record.payload)
        except msgspec.DecodeError:
            return record.payload
        if source_id and isinstance(value, dict) and value.get("source_id", source_id) != source_id:
            return record.payload
        if record.topic == topics.INGEST and isinstance(value, list):
            return _rewrite_ingest(value, subject, record.payload)
        if record.topic == topics.REJECTED and isinstance(value, dict):
            excerpt = value.get("excerpt")
            if subject.owns(value.get("event")) or (isinstance(excerpt, str) and subject.mentioned_in(excerpt)):
                return None
            return record.payload
        if isinstance(value, dict) and (subject.owns(value) or subject.owns(value.get("event"))):
            return None
        return record.payload

    return rewrite


def _rewrite_ingest(stored: list[Any], subject: Subject, payload: bytes) -> bytes | None:
    """A stored request ``[1, envelope, [event, ...], {index: messageId}?]`` without the subject's events."""
    if len(stored) < 3 or not isinstance(stored[2], list):
        return payload
    items: list[Any] = stored[2]
    made_up: dict[str, str] = stored[3] if len(stored) > 3 and isinstance(stored[3], dict) else {}
    kept: list[Any] = []
    renumbered: dict[str, str] = {}
    for index, item in enumerate(items):
        if subject.owns(item):
            continue
        message_id = made_up.get(str(index))
        if message_id is not None:
            renumbered[str(len(kept))] = message_id
        kept.append(item)
    if len(kept) == len(items):
        return payload
    if not kept:
        return None
    out: list[Any] = [stored[0], stored[1], kept]
    if renumbered:
        out.append(renumbered)
    return _encode(out)


def summarize(counts: dict[str, ForgetCount]) -> dict[str, int]:
    """Per-kind totals for the regulation's report: ingest records deleted/rewritten, delivery
    jobs deleted, refusals deleted, other records deleted."""
    out = {"ingest_records_deleted": 0, "ingest_records_rewritten": 0, "delivery_jobs_deleted": 0}
    for topic, c in counts.items():
        if topic == topics.INGEST:
            out["ingest_records_deleted"] += c.deleted
            out["ingest_records_rewritten"] += c.rewritten
        elif topic.startswith(topics.DELIVER_PREFIX):
            out["delivery_jobs_deleted"] += c.deleted + c.rewritten
        elif topic == topics.REJECTED:
            out["refusals_deleted"] = out.get("refusals_deleted", 0) + c.deleted + c.rewritten
        else:
            out["other_records_deleted"] = out.get("other_records_deleted", 0) + c.deleted + c.rewritten
    return out
