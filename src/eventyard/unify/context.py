"""What unify stages get besides the batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eventyard.privacy.suppression import SuppressionList
from eventyard.state.base import StateStore
from eventyard.unify.identity_service import IdentityService
from eventyard.unify.plan_table import PlanTable


@dataclass
class StageContext:
    state: StateStore
    #: messageId deduplication window per source, in seconds.
    dedupe_window_seconds: float = 24 * 3600.0
    clock: Callable[[], float] = field(default=time.time)
    #: Identity resolution and profiles; without it the identity and profiles stages pass
    #: events through unchanged.
    identity: IdentityService | None = None
    #: Suppressed users (``privacy.suppression``); without it the suppression stage passes all.
    suppressions: SuppressionList | None = None
    #: Sources' tracking plans, compiled; reloaded when the configuration version moves.
    tracking_plans: PlanTable = field(default_factory=PlanTable)
