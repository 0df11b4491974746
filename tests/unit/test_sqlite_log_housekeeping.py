"""SQLite log housekeeping: the backlog recount sees what other processes did."""

from __future__ import annotations

from pathlib import Path

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
