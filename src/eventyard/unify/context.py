"""What unify stages get besides the batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eventyard.state.base import StateStore


@dataclass
class StageContext:
    state: StateStore
    #: messageId deduplication window per source, in seconds.
    dedupe_window_seconds: float = 24 * 3600.0
    clock: Callable[[], float] = field(default=time.time)
