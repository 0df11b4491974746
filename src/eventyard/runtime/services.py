"""What a running server gives its destinations (``destinations.base.DestinationServices``).

* Discarded warehouse values become the counter ``eventyard_warehouse_discards_total``, one
  WARNING line per load, and ``discarded`` trace entries (reason code, ``schema.table.column``)
  kept with the log: ``eventyard trace`` shows them for the event, and the delivery overview
  (``eventyard status``, ``/api/v1/overview``) counts them per destination as an alert.
* Source names, for warehouses that name a schema after its source, from the state store
  (read again when an unknown source id comes up).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from eventyard.destinations.base import DestinationContext, DestinationServices, DiscardReport
from eventyard.log.base import EventLog, TraceEntry, Transaction
from eventyard.quality.metrics import Metrics
from eventyard.state.base import StateStore

log = logging.getLogger("eventyard.warehouse")

#: The trace step of a value a warehouse kept aside (the event itself was delivered).
DISCARDED = "discarded"


class ServerServices(DestinationServices):
    def __init__(
        self, state: StateStore, event_log: EventLog, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = state
        self.log = event_log
        self.metrics = metrics
        self.clock = clock
        self._names: dict[str, str] = {}

    async def report_discards(self, context: DestinationContext, discards: Sequence[DiscardReport]) -> None:
        by_column = Counter((d.schema, d.table, d.column, d.reason) for d in discards)
        for (schema, table, column, reason), n in by_column.items():
            self.metrics.warehouse_discards.labels(context.name, schema, table, column, reason).inc(n)
        by_table = Counter((d.schema, d.table) for d in discards)
        log.warning(
            "destination %s: %d value(s) were not loaded and went to the discards table: %s",
            context.name,
            len(discards),
            ", ".join(f"{s}.{t} {n}" for (s, t), n in sorted(by_table.items())),
        )
        now = self.clock()
        seen: set[tuple[str, str, str]] = set()
        trace = []
        for d in discards:
            if not d.message_id or (d.message_id, d.reason, d.column) in seen:
                continue
            seen.add((d.message_id, d.reason, d.column))
            trace.append(
                TraceEntry(
                    d.message_id,
                    d.source_id,
                    DISCARDED,
                    context.destination_id,
                    reason=d.reason,
                    detail=f"{d.schema}.{d.table}.{d.column} (see {d.schema}.discards)",
                    at=now,
                )
            )
        if trace:
            await self.log.commit(Transaction(trace=trace))

    async def source_name(self, source_id: str) -> str | None:
        name = self._names.get(source_id)
        if name is None:
            self._names = {s.id: s.name for s in await self.state.list_sources()}
            name = self._names.get(source_id)
        return name
