"""Every reason the tracking API refuses something, in one table: code -> (HTTP status, text).

Request-level reasons refuse the whole request. Event-level reasons refuse one event; in a
batch the others are still accepted and the response lists the refused ones. Every refusal
is counted in ``eventyard_events_rejected_total{reason=...}`` and, for events, recorded in
the ``rejected`` topic that the live view and the debugger read.
"""

from __future__ import annotations

from typing import NamedTuple


class Reason(NamedTuple):
    status: int
    text: str


REQUEST: dict[str, Reason] = {
    "invalid_json": Reason(400, "the body is not valid JSON"),
    "invalid_body": Reason(400, "the body must be a JSON object"),
    "invalid_encoding": Reason(400, "the body could not be decompressed"),
    "empty_batch": Reason(400, "the batch holds no events"),
    "too_many_events": Reason(400, "the batch holds more events than this source allows"),
    "no_valid_events": Reason(400, "no event in the request could be accepted"),
    "request_too_large": Reason(413, "the request body is larger than this source allows"),
    "missing_write_key": Reason(401, "no write key: use HTTP Basic auth with the write key as user, or `writeKey`"),
    "invalid_write_key": Reason(401, "the write key matches no source"),
    "source_disabled": Reason(403, "the source of this write key is disabled"),
    "not_found": Reason(404, "no such endpoint"),
    "method_not_allowed": Reason(405, "method not allowed on this endpoint"),
    "backlog_full": Reason(429, "the ingest backlog is over its limit; retry after the delay"),
    "log_full": Reason(503, "the event log cannot store more right now; retry after the delay"),
    "unavailable": Reason(503, "the event log is unavailable; retry after the delay"),
}

#: Event-level reasons (raised by ``spec.normalize`` or the size checks); all answer 400
#: when the request held a single event.
EVENT: dict[str, str] = {
    "invalid_field": "a field has the wrong JSON type",
    "missing_type": "the event has no `type`",
    "invalid_type": "the event's `type` is not a known call type",
    "missing_user_id": "the event has neither `userId` nor `anonymousId`",
    "missing_event": "a track call has no `event` name",
    "missing_group_id": "a group call has no `groupId`",
    "missing_previous_id": "an alias call has no `previousId`",
    "message_id_too_long": "`messageId` is longer than 100 characters",
    "invalid_timestamp": "a timestamp is not ISO-8601",
    "invalid_merge": "a merge call needs two identifiers in `mergeProperties`",
    "event_too_large": "the event is larger than this source allows",
    "not_an_object": "a batch item is not a JSON object",
    # Not told to the client (it gets 200, as for a stored event): counted, and shown in the
    # live view without the event's content (see privacy.suppression).
    "suppressed": "the user is suppressed by a regulation; the event was not stored",
}


def status_of(reason: str) -> int:
    found = REQUEST.get(reason)
    return found.status if found else 400
