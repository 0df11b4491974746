"""GroupCommit: concurrent items share one transaction; a failed transaction fails exactly the
callers whose items were in it; items that arrive during a commit go into the next one."""

from __future__ import annotations

import asyncio

import pytest

from eventyard.errors import Unavailable
from eventyard.state.group_commit import GroupCommit


class Store:
    """A fake transactional store: records each group; can hold a group or make it fail."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.written: list[str] = []
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail_next: Exception | None = None

    async def commit(self, items: list[str]) -> list[int]:
        self.groups.append(items)
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        first = len(self.written) + 1
        self.written += items
        return list(range(first, first + len(items)))


async def test_concurrent_items_share_one_commit_and_get_their_own_results() -> None:
    store = Store()
    group: GroupCommit[str, int] = GroupCommit(store.commit)
    ids = await asyncio.gather(*(group.submit(f"e{i}") for i in range(100)))
    assert ids == list(range(1, 101))  # each caller its own, in the order submitted
    assert store.written == [f"e{i}" for i in range(100)]
    assert (group.commits, group.items) == (1, 100)


async def test_a_large_backlog_is_committed_in_bounded_groups() -> None:
    store = Store()
    group: GroupCommit[str, int] = GroupCommit(store.commit, max_group=30)
    ids = await asyncio.gather(*(group.submit(f"e{i}") for i in range(100)))
    assert ids == list(range(1, 101))
    assert [len(g) for g in store.groups] == [30, 30, 30, 10]


async def test_one_at_a_time_is_one_commit_each() -> None:
    store = Store()
    group: GroupCommit[str, int] = GroupCommit(store.commit)
    assert [await group.submit(x) for x in "abc"] == [1, 2, 3]
    assert group.commits == 3


async def test_a_failed_commit_fails_exactly_its_callers_and_the_next_group_goes_through() -> None:
    store = Store()
    store.hold = asyncio.Event()
    group: GroupCommit[str, int] = GroupCommit(store.commit)
    first = [asyncio.ensure_future(group.submit(f"a{i}")) for i in range(5)]
    await store.started.wait()  # the first group's commit is under way (and held)
    later = [asyncio.ensure_future(group.submit(f"b{i}")) for i in range(3)]
    store.fail_next = Unavailable("disk full")
    store.hold.set()
    for task in first:
        with pytest.raises(Unavailable, match="disk full"):
            await task
    assert await asyncio.gather(*later) == [1, 2, 3]  # arrived during the failed commit: next group
    assert store.groups == [[f"a{i}" for i in range(5)], ["b0", "b1", "b2"]]
    assert store.written == ["b0", "b1", "b2"]
    assert await group.submit("c") == 4  # and the writer goes on


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    store = Store()
    store.hold = asyncio.Event()
    group: GroupCommit[str, int] = GroupCommit(store.commit)
    tasks = [asyncio.ensure_future(group.submit(x)) for x in "abc"]
    await store.started.wait()
    tasks[1].cancel()
    store.hold.set()
    assert await tasks[0] == 1 and await tasks[2] == 3
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert store.written == ["a", "b", "c"]  # its item was in the transaction already


async def test_a_commit_that_returns_the_wrong_number_of_results_fails_the_group() -> None:
    async def short(items: list[str]) -> list[int]:
        return [1]

    group: GroupCommit[str, int] = GroupCommit(short)
    results = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)


def test_the_writer_follows_the_event_loop_it_is_used_from() -> None:
    store = Store()
    group: GroupCommit[str, int] = GroupCommit(store.commit)

    async def two() -> list[int]:
        return list(await asyncio.gather(group.submit("x"), group.submit("y")))

    assert asyncio.run(two()) == [1, 2]
    assert asyncio.run(two()) == [3, 4]  # a second loop, as the command line runs them
