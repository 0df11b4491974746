"""What every warehouse destination does around a load: schemas per source, isolating an event
the database refuses, and reporting discarded values.

* ``schemas_of``: the schema of each source in a batch (``SourceSchemas``), asking the
  destination's context for source names it has not seen yet.
* ``Bisector``: decides which events a backend loads next; when the database refuses a load
  for good (a ``failed`` outcome, not a ``retry``), each half is loaded on its own, down to
  single events, so one bad event cannot keep a whole batch out. The refused event gets the
  error (``load_refused: ...``); events still unresolved when the budget of loads is spent are
  retried later, in other company.
* ``discard_reports``: the discards of committed loads as ``DiscardReport`` s for the context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from eventyard.destinations.base import DeliveryEvent, DestinationContext, DiscardReport, Outcome
from eventyard.warehouse.batch import Grouped
from eventyard.warehouse.discards import Discard
from eventyard.warehouse.flatten import flatten_event
from eventyard.warehouse.naming import Dialect, SourceSchemas

#: ``load(indices)`` -> (events that cannot be loaded, with why; the error of the load or ``None``).
LoadFn = Callable[[list[int]], tuple[dict[int, str], Outcome | None]]


async def schemas_of(
    schemas: SourceSchemas, context: DestinationContext, batch: Sequence[DeliveryEvent]
) -> dict[str, str]:
    """Source id -> schema for every source in ``batch`` (raises when a look-up fails)."""
    out: dict[str, str] = {}
    for item in batch:
        source_id = item.source_id
        if source_id in out:
            continue
        found = schemas.known(source_id)
        if found is None:
            found = schemas.resolve(source_id, await context.source_name(source_id))
        out[source_id] = found
    return out


class Bisector:
    """Splits a refused set of events into halves until the refused ones are alone.

    Use: ``while (part := bisector.next()) is not None: bisector.done(part, *load(part))``.
    """

    def __init__(self, indices: list[int], budget: int = 64) -> None:
        self._parts = [indices] if indices else []
        #: Most loads for one batch (a batch of 5,000 with one bad event takes about 26).
        self.budget = budget
        self.loads = 0
        #: Event index -> outcome, for every event that was not delivered.
        self.outcomes: dict[int, Outcome] = {}

    def next(self) -> list[int] | None:
        """The next set of events to load, or ``None`` when every event has its fate."""
        return self._parts.pop() if self._parts else None

    def done(self, part: list[int], failed: dict[int, str], error: Outcome | None, isolate: bool = True) -> None:
        """The result of loading ``part``: events that cannot be loaded at all (``failed``), and the
        load's error (``None``: the rest is delivered). ``isolate=False`` for errors that no event
        caused (the database cannot be reached): every event of the part gets the error."""
        self.loads += 1
        for i, reason in failed.items():
            self.outcomes[i] = Outcome.failed(reason)
        if error is None:
            return
        rest = [i for i in part if i not in failed]
        if error.kind == "retry" or not isolate or len(rest) == 1:
            for i in rest:
                self.outcomes[i] = error
        elif self.loads + len(self._parts) >= self.budget:
            note = f"{error.error} (retried: the events of this batch were not yet told apart)"
            for i in rest:
                self.outcomes[i] = Outcome.retry(note)
        elif rest:
            half = len(rest) // 2
            self._parts += [rest[half:], rest[:half]]

    def run(self, load: LoadFn) -> None:
        """Load until done, with a synchronous ``load``."""
        while (part := self.next()) is not None:
            self.done(part, *load(part))


def discard_reports(
    batch: Sequence[DeliveryEvent], discards: Sequence[tuple[int, str, Discard]]
) -> list[DiscardReport]:
    """``(event index, schema, discard)`` as reports (index ``-1``: the event is not known)."""
    out = []
    for index, schema, d in discards:
        item = batch[index] if 0 <= index < len(batch) else None
        out.append(
            DiscardReport(
                message_id=item.message_id if item else "",
                source_id=item.source_id if item else "",
                schema=schema,
                table=d.table,
                column=d.column,
                reason=d.reason,
            )
        )
    return out


def flatten_batch(
    events: Sequence[Mapping[str, Any]],
    sources: Sequence[str],
    schemas: dict[str, str],
    loaded_at: datetime,
    dialect: Dialect,
    pause_every: int = 0,
) -> tuple[Grouped, dict[int, Outcome]]:
    """The events flattened and grouped by (schema, table), and those that cannot be loaded.

    ``pause_every``: in a worker thread, hand the GIL to the event loop's thread every so many
    events (it feeds the other loads in flight).
    """
    grouped = Grouped()
    unsupported: dict[int, Outcome] = {}
    for index, event in enumerate(events):
        if pause_every and index % pause_every == pause_every - 1:
            time.sleep(0)
        try:
            flat = flatten_event(event, loaded_at=loaded_at, dialect=dialect)
        except (ValueError, TypeError) as exc:
            unsupported[index] = Outcome.failed(f"unsupported_event: {exc}")
            continue
        grouped.add(index, schemas[sources[index]], flat)
    return grouped, unsupported
