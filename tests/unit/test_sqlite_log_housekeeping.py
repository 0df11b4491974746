"""SQLite log housekeeping: the backlog recount sees what other processes did; rescheduling goes in steps."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventyard.log import sqlite as sqlite_log
from eventyard.log.sqlite import SQLiteEventLog


async def test_refresh_backlog_recounts_records_finished_by_another_process(tmp_path: Path) -> None:
    ours, theirs = SQLiteEventLog(tmp_path / "log.sqlite3"), SQLiteEventLog(tmp_path / "log.sqlite3")
    await ours.start()
    await theirs.start()
    try:
        await ours.append("t", [("k", b"1"), ("k", b"2"), ("k", b"3")])
        await ours.append("u", [("k", b"4")])
        await ours.append("archived", [("k", b"5")], archive=True)
        await theirs.ack([r.id for r in await theirs.lease("t", "c", 2)])
        assert ours.backlog_estimate("t") == 3  # not seen yet
        await ours.refresh_backlog()
        assert (ours.backlog_estimate("t"), ours.backlog_estimate("u")) == (1, 1)
        await theirs.ack([r.id for r in await theirs.lease("u", "c", 1)])
        await ours.refresh_backlog()
        assert ours.backlog_topics() == ["t"]
    finally:
        await ours.close()
        await theirs.close()


async def test_reschedule_waiting_goes_through_a_large_queue_in_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "RESCHEDULE_STEP", 3)
    log = SQLiteEventLog(tmp_path / "log.sqlite3")
    await log.start()
    try:
        await log.append("t", [("", str(i).encode()) for i in range(10)])
        await log.append("other", [("", b"x")])
        leased = await log.lease("t", "c", 10)
        await log.retry([r.id for r in leased[1:]], time.time() + 3600, "down")  # the first stays leased
        assert await log.reschedule_waiting("t", 0.0) == 9
        again = await log.lease("t", "c", 10)
        assert [r.payload for r in again] == [str(i).encode() for i in range(1, 10)]
    finally:
        await log.close()


def _pid_of_a_finished_process() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


async def test_a_restart_takes_back_the_leases_of_a_process_that_died(tmp_path: Path) -> None:
    dead_pid = await asyncio.to_thread(_pid_of_a_finished_process)
    host = socket.gethostname()
    log = SQLiteEventLog(tmp_path / "log.sqlite3")
    await log.start()
    try:
        await log.append("t", [("", b"held by the dead"), ("", b"held by the living"), ("", b"held elsewhere")])
        assert len(await log.lease("t", f"{host}:{dead_pid}", 1, lease_seconds=3600)) == 1
        assert len(await log.lease("t", f"{host}:{os.getppid()}", 1, lease_seconds=3600)) == 1
        assert len(await log.lease("t", f"elsewhere:{dead_pid}", 1, lease_seconds=3600)) == 1
    finally:
        await log.close()
    again = SQLiteEventLog(tmp_path / "log.sqlite3")  # the server starts again
    await again.start()
    try:
        back = await again.lease("t", "new", 10)
        # only the dead local process's lease: a running process and another machine keep theirs
        assert [r.payload for r in back] == [b"held by the dead"]
    finally:
        await again.close()
