"""When to try a failed delivery again, and when to give up.

Backoff is exponential with full jitter between half and all of the step, capped, and never
shorter than a Retry-After the destination asked for. A job is dead-lettered only when it
has used its attempts AND its retry window has passed since it was first queued: a burst of
fast failures cannot exhaust a destination's window, and a long outage cannot burn through
the attempts in minutes.
"""

from __future__ import annotations

import random

from eventyard.state.base import DeliveryPolicy

BASE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
#: A Retry-After longer than this is capped (a confused server cannot park a queue for days).
MAX_RETRY_AFTER_SECONDS = 3600.0


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    step = min(MAX_BACKOFF_SECONDS, BASE_SECONDS * float(2 ** min(max(0, attempts - 1), 30)))
    r = rng.random() if rng is not None else random.random()
    return step * (0.5 + 0.5 * r)


def next_attempt(
    policy: DeliveryPolicy,
    attempts: int,
    first_queued: float,
    now: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Unix time of the next attempt, or ``None`` when the job must be dead-lettered."""
    window = policy.retry_window_hours * 3600.0
    if attempts >= policy.max_attempts and now - first_queued >= window:
        return None
    wait = backoff(attempts, rng)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return now + wait
