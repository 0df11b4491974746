"""Destination health: a destination that keeps failing is marked degraded, loudly.

Degraded is a label, never a switch: deliveries go on (with their retries), and the
operator is told through the ``eventyard_destination_degraded`` gauge, the delivery
overview, a warning in the log and the state store. The first delivery that succeeds again
marks it healthy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Consecutive failed deliveries (retry or terminal) before a destination counts as degraded.
DEGRADED_AFTER = 20


class HealthTracker:
    def __init__(
        self,
        destination_id: str,
        name: str,
        report: Callable[[str, str], Awaitable[None]],
        threshold: int = DEGRADED_AFTER,
    ) -> None:
        self.destination_id = destination_id
        self.name = name
        self.report = report
        self.threshold = threshold
        self.failures_in_a_row = 0
        self.status = "healthy"
        self.last_error = ""

    async def observe(self, delivered: int, failed: int, last_error: str = "") -> None:
        if delivered:
            self.failures_in_a_row = 0
            if self.status != "healthy":
                self.status = "healthy"
                log.info("destination %s (%s) delivers again", self.name, self.destination_id)
                await self.report("healthy", "")
            return
        if not failed:
            return
        self.failures_in_a_row += failed
        self.last_error = last_error or self.last_error
        if self.status != "degraded" and self.failures_in_a_row >= self.threshold:
            self.status = "degraded"
            reason = f"{self.failures_in_a_row} deliveries failed in a row; last error: {self.last_error}"
            log.warning("destination %s (%s) is degraded: %s", self.name, self.destination_id, reason)
            await self.report("degraded", reason)
