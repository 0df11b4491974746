"""Group commit: many concurrent writers of small items, one transaction for all of them.

The audit trail writes one small entry for every audited request, and the request may only go
on once its entry is durable. One transaction per entry costs one commit (an fsync) per entry,
and concurrent writers wait for each other's commits one after the other. A
:class:`GroupCommit` queues the items instead: one drain task takes every item pending at that
moment, commits them together in one transaction, and then resolves each caller: with the
result for its own item, or, when the transaction failed, with the error (every caller of that
group gets it; none of their items was written). Items that arrive while a commit runs wait for
the next one, so an idle store adds no delay and a busy one pays one commit per group.

There is no timer: a group is whatever arrived while the previous commit ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from eventyard.errors import Unavailable

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

#: Most items committed in one transaction (a larger backlog is committed in several).
MAX_GROUP = 1000


class GroupCommit(Generic[ItemT, ResultT]):
    """``await submit(item)`` returns once ``commit`` has written the group holding ``item``.

    ``commit`` gets the items of one group in the order they were submitted and returns one
    result per item, in the same order; it writes all of them or none (one transaction).
    """

    def __init__(
        self, commit: Callable[[list[ItemT]], Awaitable[list[ResultT]]], *, max_group: int = MAX_GROUP
    ) -> None:
        self._commit = commit
        self.max_group = max_group
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Transactions started, and the items given to them (tests and benchmarks read these).
        self.commits = 0
        self.items = 0

    async def submit(self, item: ItemT) -> ResultT:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (the command line runs one after another)
            self._loop, self._pending, self._task = loop, [], None
        future: asyncio.Future[ResultT] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self.max_group]
                del self._pending[: self.max_group]
                self.commits += 1
                self.items += len(group)
                try:
                    results = await self._commit([item for item, _ in group])
                    if len(results) != len(group):
                        raise Unavailable(f"a group commit returned {len(results)} results for {len(group)} items")
                except BaseException as exc:  # the whole group failed: each of its callers hears of it
                    error = exc if isinstance(exc, Exception) else Unavailable("the write was interrupted")
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():  # a caller that gave up (cancelled) still had its item written
                        future.set_result(result)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
