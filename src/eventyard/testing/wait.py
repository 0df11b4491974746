"""Waiting for something another process does, bounded in time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0, every: float = 0.05) -> T:
    """Call ``probe`` until ``done(result)`` holds or ``timeout`` passes; return the last result."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    result = probe()
    while not done(result) and time.monotonic() < deadline:
        pause.wait(every)
        result = probe()
    return result


async def eventually_async(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 15.0, every: float = 0.05
) -> T:
    """``eventually`` for coroutines: await ``probe()`` until ``done(result)`` or ``within`` seconds."""
    deadline = time.monotonic() + within
    result = await probe()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(every)
        result = await probe()
    return result
