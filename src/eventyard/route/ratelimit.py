"""Per-destination pacing: an optional rate limit that backs off when the destination says 429.

Tokens refill at ``rate`` per second. On a 429 the destination is paused until its
Retry-After (or one second) and the rate halves; every successful delivery raises it by 5%
again, up to the configured limit (or until it is high enough to stop limiting, when none is
configured).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

UNLIMITED_ABOVE = 10_000.0


class RateLimiter:
    def __init__(self, limit: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.rate: float | None = limit
        self.clock = clock
        self.tokens = 1.0
        self.updated = clock()
        self.paused_until = 0.0

    def delay(self, cost: float = 1.0) -> float:
        """Seconds to wait before spending ``cost`` tokens (0 means go now; tokens are spent)."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        if self.rate is None:
            return 0.0
        self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    async def acquire(self, cost: float = 1.0) -> None:
        # Pacing is waiting for time to pass, not for an event: sleeping is the point here.
        while (wait := self.delay(cost)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(wait, 1.0))

    def throttled(self, retry_after: float | None, observed_rate: float) -> None:
        """The destination answered 429."""
        self.paused_until = self.clock() + (retry_after if retry_after is not None else 1.0)
        current = self.rate if self.rate is not None else max(observed_rate, 1.0)
        self.rate = max(0.5, current / 2)
        self.tokens = 0.0

    def succeeded(self) -> None:
        if self.rate is None:
            return
        raised = self.rate * 1.05
        if self.limit is not None:
            self.rate = min(self.limit, raised)
        else:
            self.rate = None if raised > UNLIMITED_ABOVE else raised
