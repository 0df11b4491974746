"""Names of the log's topics, shared by every stage."""

from __future__ import annotations

#: Accepted events, written by collect, consumed by the unify pipeline.
INGEST = "ingest"
#: Refused events and requests (archived: nothing consumes them; the live view reads them).
REJECTED = "rejected"
DELIVER_PREFIX = "deliver."


def deliver(destination_id: str) -> str:
    """The queue of delivery jobs of one destination."""
    return DELIVER_PREFIX + destination_id
