"""Retry timing, rate limiting and health: the policy every destination shares."""

from __future__ import annotations

import random

from eventyard.route.health import HealthTracker
from eventyard.route.ratelimit import RateLimiter
from eventyard.route.retry import MAX_BACKOFF_SECONDS, backoff, next_attempt
from eventyard.state.base import DeliveryPolicy
from eventyard.testing.clock import FakeClock


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    waits = [backoff(n, rng) for n in range(1, 12)]
    for n, wait in enumerate(waits, start=1):
        step = min(MAX_BACKOFF_SECONDS, 2 ** (n - 1))
        assert step / 2 <= wait <= step
    assert max(waits) <= MAX_BACKOFF_SECONDS


def test_dead_letter_only_after_attempts_and_window() -> None:
    policy = DeliveryPolicy(max_attempts=3, retry_window_hours=4)
    queued = 1_000_000.0
    # attempts used up, window not passed: keep retrying
    assert next_attempt(policy, 3, queued, queued + 60) is not None
    # window passed, attempts left: keep retrying
    assert next_attempt(policy, 2, queued, queued + 5 * 3600) is not None
    # both: give up
    assert next_attempt(policy, 3, queued, queued + 4 * 3600) is None


def test_retry_after_is_honoured() -> None:
    policy = DeliveryPolicy()
    now = 1000.0
    due = next_attempt(policy, 1, now, now, retry_after=120, rng=random.Random(1))
    assert due is not None and due >= now + 120
    capped = next_attempt(policy, 1, now, now, retry_after=10**9, rng=random.Random(1))
    assert capped is not None and capped <= now + 3600


def test_rate_limiter_paces_and_backs_off_on_429() -> None:
    clock = FakeClock(100.0)
    limiter = RateLimiter(10.0, clock)
    assert limiter.delay() == 0.0
    spent = [limiter.delay() for _ in range(20)]
    assert any(d > 0 for d in spent)  # over 10/s it asks to wait
    limiter.throttled(retry_after=5.0, observed_rate=10.0)
    assert limiter.delay() == 5.0  # paused for Retry-After
    assert limiter.rate == 5.0  # halved
    clock.now += 5.0
    for _ in range(30):
        limiter.succeeded()
    assert limiter.rate == 10.0  # recovers up to the configured limit, not beyond


def test_unlimited_destination_gets_a_limit_when_throttled_and_loses_it_again() -> None:
    limiter = RateLimiter(None, FakeClock(100.0))
    assert limiter.delay() == 0.0
    limiter.throttled(None, observed_rate=400.0)
    assert limiter.rate == 200.0
    for _ in range(200):
        limiter.succeeded()
    assert limiter.rate is None


async def test_health_marks_degraded_after_failures_in_a_row_and_recovers() -> None:
    reports: list[tuple[str, str]] = []

    async def report(status: str, reason: str) -> None:
        reports.append((status, reason))

    tracker = HealthTracker("d1", "hook", report, threshold=5)
    await tracker.observe(0, 3, "HTTP 500")
    assert reports == []
    await tracker.observe(0, 2, "HTTP 503")
    assert reports[0][0] == "degraded" and "HTTP 503" in reports[0][1]
    await tracker.observe(0, 10, "HTTP 503")
    assert len(reports) == 1  # told once, not on every failure
    await tracker.observe(1, 0)
    assert reports[-1] == ("healthy", "")
