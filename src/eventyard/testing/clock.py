"""A clock that moves only when a test moves it.

Pass it wherever eventyard takes a ``clock`` callable (the logs, the delivery worker, rate
limiters, file destinations) and set ``now`` to make time pass without sleeping.
"""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
