"""The function destination: handlers, error classes, timeouts, crashes, on_batch, captured output.

Every test runs real user modules (written to ``tmp_path``) in the real worker process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventyard.destinations.base import DeleteSubject, DestinationContext, Outcome
from eventyard.destinations.function import FunctionDestination, FunctionSettings
from eventyard.errors import ConfigError
from eventyard.testing import events
from eventyard.testing.wait import eventually

Make = Callable[..., Awaitable[FunctionDestination]]

RECORDING = """
import json, os

def record(handler, event, settings):
    with open(settings["out"], "a") as f:
        f.write(json.dumps({"handler": handler, "id": event.get("messageId"), "pid": os.getpid(),
                            "event": event, "tag": settings.get("tag")}) + "\\n")
"""


def module_source(body: str) -> str:
    return RECORDING + textwrap.dedent(body)


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[FunctionDestination] = []

    async def _make(body: str, start: bool = True, **options: Any) -> FunctionDestination:
        path = tmp_path / f"function_{len(made)}.py"
        path.write_text(module_source(body))
        user_settings = {"out": str(tmp_path / "calls.jsonl"), **options.pop("settings", {})}
        settings = FunctionSettings(module=str(path), settings=user_settings, **options)
        destination = FunctionDestination(settings, DestinationContext("dst-fn", "fn", tmp_path))
        made.append(destination)
        if start:
            await destination.start()
        return destination

    yield _make
    for destination in made:
        await destination.close()


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def track(name: str, message_id: str | None = None) -> Any:
    return events.delivery(events.track(name, message_id=message_id or f"msg-{name}"))


ALL_HANDLERS = """
def on_track(event, settings): record("on_track", event, settings)
def on_identify(event, settings): record("on_identify", event, settings)
async def on_page(event, settings): record("on_page", event, settings)
async def on_screen(event, settings): record("on_screen", event, settings)
def on_group(event, settings): record("on_group", event, settings)
def on_alias(event, settings): record("on_alias", event, settings)
"""


async def test_each_type_goes_to_its_handler_with_the_settings(make: Make, tmp_path: Path) -> None:
    destination = await make(ALL_HANDLERS, settings={"tag": "t-1"})
    batch = [events.delivery(events.of_type(kind, i)) for i, kind in enumerate(events.TYPES)]

    outcomes = await destination.deliver(batch)

    assert outcomes == [Outcome.delivered()] * len(batch)
    seen = calls(tmp_path)
    assert [(c["handler"], c["id"]) for c in seen] == [(f"on_{e.event['type']}", e.message_id) for e in batch]
    assert all(c["tag"] == "t-1" for c in seen)
    assert seen[0]["event"] == batch[0].payload


async def test_the_mapped_payload_is_what_the_handler_gets(make: Make, tmp_path: Path) -> None:
    destination = await make(ALL_HANDLERS)
    event = events.track("Signed Up")
    mapped = {"messageId": "mapped-1", "name": "signed_up"}

    assert await destination.deliver([events.delivery(event, payload=mapped)]) == [Outcome.delivered()]
    assert calls(tmp_path)[0]["event"] == mapped


async def test_a_type_without_handler_is_dropped_as_not_supported(make: Make, tmp_path: Path) -> None:
    destination = await make("def on_track(event, settings): record('on_track', event, settings)")

    outcomes = await destination.deliver([events.delivery(events.page()), track("Viewed")])

    assert outcomes == [Outcome.dropped("event_not_supported"), Outcome.delivered()]
    assert [c["handler"] for c in calls(tmp_path)] == ["on_track"]


RAISING = """
from eventyard import functions

def on_track(event, settings):
    kind = event["event"]
    if kind == "KeyError":
        return {}["missing"]
    if kind == "DropEventDefault":
        raise functions.DropEvent()
    if kind == "DropEvent":
        raise functions.DropEvent("not_a_customer")
    raise getattr(functions, kind)(f"{kind} raised")
"""


@pytest.mark.parametrize(
    ("raised", "kind", "error"),
    [
        ("RetryError", "retry", "RetryError: RetryError raised"),
        ("DropEvent", "dropped", "not_a_customer"),
        ("DropEventDefault", "dropped", "dropped_by_function"),
        ("EventNotSupported", "dropped", "event_not_supported"),
        ("InvalidEventPayload", "failed", "InvalidEventPayload: InvalidEventPayload raised"),
        ("ValidationError", "failed", "ValidationError: ValidationError raised"),
        ("KeyError", "failed", "KeyError: 'missing' (at function_0.py:"),
    ],
)
async def test_errors_map_to_outcomes(make: Make, raised: str, kind: str, error: str) -> None:
    destination = await make(RAISING)

    [outcome] = await destination.deliver([track(raised)])

    assert outcome.kind == kind
    assert outcome.error.startswith(error)


async def test_output_of_a_failed_call_is_kept_up_to_4_kb(make: Make) -> None:
    destination = await make(
        """
        import logging

        def on_track(event, settings):
            print("FIRST LINE")
            for i in range(500):
                print(f"line {i:04d} of noise")
            logging.getLogger("fn").warning("about to fail")
            print("LAST WORDS")
            if event["event"] == "fail":
                raise RuntimeError("gave up")
        """
    )

    failed, delivered = await destination.deliver([track("fail"), track("fine")])

    assert failed.kind == "failed"
    assert failed.error.startswith("RuntimeError: gave up")
    output = failed.error.split("\n--- output ---\n", 1)[1]
    assert "LAST WORDS" in output and "WARNING fn: about to fail" in output
    assert "FIRST LINE" not in output and len(output) <= 4096
    assert delivered == Outcome.delivered()


async def test_writes_to_fd_1_do_not_disturb_the_worker(make: Make, tmp_path: Path) -> None:
    destination = await make(
        """
        import os, sys

        def on_track(event, settings):
            os.write(1, b"raw bytes on stdout\\n")
            sys.__stdout__.write("more on the real stdout\\n")
            sys.__stdout__.flush()
            record("on_track", event, settings)
        """
    )

    assert await destination.deliver([track("a"), track("b")]) == [Outcome.delivered()] * 2
    assert [c["id"] for c in calls(tmp_path)] == ["msg-a", "msg-b"]


async def test_a_call_past_the_timeout_is_retried_and_its_process_replaced(make: Make, tmp_path: Path) -> None:
    destination = await make(
        """
        def on_track(event, settings):
            record("on_track", event, settings)
            while event["event"] == "loop":
                pass
        """,
        timeout_seconds=1.0,
    )

    outcomes = await destination.deliver([track("before"), track("loop"), track("after")])

    assert [o.kind for o in outcomes] == ["delivered", "retry", "delivered"]
    assert "on_track took longer than 1s" in outcomes[1].error
    pids = [c["pid"] for c in calls(tmp_path)]
    assert pids[0] == pids[1] != pids[2]


async def test_a_process_that_exits_is_a_retry_and_is_started_again(make: Make, tmp_path: Path) -> None:
    destination = await make(
        """
        import os, sys

        def on_track(event, settings):
            record("on_track", event, settings)
            if event["event"] == "exit":
                sys.stderr.flush()
                os.write(2, b"leaving now\\n")
                os._exit(3)
        """
    )

    outcomes = await destination.deliver([track("exit"), track("after")])

    assert outcomes[0].kind == "retry"
    assert "exited with code 3" in outcomes[0].error and "leaving now" in outcomes[0].error
    assert outcomes[1] == Outcome.delivered()
    first, second = calls(tmp_path)
    assert first["pid"] != second["pid"]


async def test_a_segfault_is_contained(make: Make) -> None:
    destination = await make(
        """
        import ctypes

        def on_track(event, settings):
            if event["event"] == "crash":
                ctypes.string_at(0)
        """
    )

    outcomes = await destination.deliver([track("crash"), track("fine")])

    assert outcomes[0].kind == "retry"
    assert "SIGSEGV" in outcomes[0].error and "Fatal Python error" in outcomes[0].error
    assert outcomes[1] == Outcome.delivered()


async def test_a_memory_blow_up_fails_the_event_and_restarts_the_process(make: Make, tmp_path: Path) -> None:
    destination = await make(
        """
        def on_track(event, settings):
            record("on_track", event, settings)
            if event["event"] == "hog":
                hoard = bytearray(2 * 1024 ** 3)
        """,
        memory_limit_mb=256,
    )

    outcomes = await destination.deliver([track("hog"), track("after")])

    assert outcomes[0].kind == "failed" and outcomes[0].error.startswith("MemoryError")
    assert outcomes[1] == Outcome.delivered()
    first, second = calls(tmp_path)
    assert first["pid"] != second["pid"]


async def test_a_cancelled_delivery_leaves_a_usable_destination(make: Make, tmp_path: Path) -> None:
    destination = await make(
        """
        import time

        def on_track(event, settings):
            record("on_track", event, settings)
            while event["event"] == "stuck":
                time.sleep(0.01)
        """,
        timeout_seconds=60,
    )
    stuck = asyncio.create_task(destination.deliver([track("stuck")]))
    # Once the handler runs, the request is in flight.
    assert await asyncio.to_thread(eventually, lambda: calls(tmp_path), bool, 30)
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck

    assert await destination.deliver([track("fine")]) == [Outcome.delivered()]
    assert [c["id"] for c in calls(tmp_path)] == ["msg-stuck", "msg-fine"]


BATCH = """
from eventyard import functions

def on_track(event, settings):
    record("on_track", event, settings)

def on_batch(events, settings):
    for event in events:
        record("on_batch", event, settings)
    mode = events[0]["event"]
    if mode == "raise":
        raise functions.RetryError("whole batch later")
    if mode == "none":
        return None
    if mode == "short":
        return [None]
    return [
        None,
        functions.RetryError("try me again"),
        functions.ValidationError("no email"),
        {"status": 429, "errormessage": "slow down"},
        {"status": 400, "errormessage": "bad field"},
        {"status": 200},
        functions.DropEvent("filtered"),
        KeyError("k"),
    ]
"""


async def test_on_batch_results_retry_only_the_failed_events(make: Make, tmp_path: Path) -> None:
    destination = await make(BATCH, batch=True)
    batch = [track("partial", f"b-{i}") for i in range(8)]

    outcomes = await destination.deliver(batch)

    assert [(o.kind, o.status) for o in outcomes] == [
        ("delivered", None),
        ("retry", None),
        ("failed", None),
        ("retry", 429),
        ("failed", 400),
        ("delivered", None),
        ("dropped", None),
        ("failed", None),
    ]
    assert outcomes[1].error == "RetryError: try me again"
    assert outcomes[3].error == "HTTP 429: slow down"
    assert outcomes[6].error == "filtered"
    assert outcomes[7].error.startswith("KeyError: 'k'")
    assert [c["handler"] for c in calls(tmp_path)] == ["on_batch"] * 8


@pytest.mark.parametrize(
    ("mode", "kind", "error"),
    [
        ("none", "delivered", ""),
        ("raise", "retry", "RetryError: whole batch later"),
        ("short", "failed", "TypeError: on_batch must return None or a list of 3 results (one per event), got 1"),
    ],
)
async def test_on_batch_answers_for_the_whole_batch(make: Make, mode: str, kind: str, error: str) -> None:
    destination = await make(BATCH, batch=True)

    outcomes = await destination.deliver([track(mode, f"w-{i}") for i in range(3)])

    assert {o.kind for o in outcomes} == {kind}
    assert all(o.error.startswith(error) for o in outcomes)


async def test_batch_mode_without_on_batch_calls_the_event_handlers(make: Make, tmp_path: Path) -> None:
    destination = await make(ALL_HANDLERS, batch=True)

    assert await destination.deliver([track("a"), track("b")]) == [Outcome.delivered()] * 2
    assert [c["handler"] for c in calls(tmp_path)] == ["on_track", "on_track"]
    assert FunctionDestination.capabilities_for(destination.settings).batch_size < 100


def test_capabilities_follow_the_module_source(tmp_path: Path) -> None:
    path = tmp_path / "caps.py"
    path.write_text("from helpers import on_batch\nasync def on_delete(event, settings): pass\n")
    with_all = FunctionDestination.capabilities_for(FunctionSettings(module=str(path), batch=True, max_batch_size=40))
    path.write_text("def on_track(event, settings): pass\n")
    plain = FunctionDestination.capabilities_for(FunctionSettings(module=str(path), batch=True, timeout_seconds=30))
    missing = FunctionDestination.capabilities_for(FunctionSettings(module=str(tmp_path / "nope.py")))

    assert (with_all.deletes, with_all.batch_size, with_all.concurrency) == (True, 40, 1)
    assert (plain.deletes, plain.batch_size) == (False, 2)
    assert missing.deletes is False


async def test_an_importable_module_name_works(make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "lib" / "acme_functions"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the package is not imported by capabilities_for')\n")
    (package / "crm.py").write_text("def on_delete(event, settings): pass\n")
    (tmp_path / "lib" / "acme_plain.py").write_text(module_source(ALL_HANDLERS))
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))

    caps = FunctionDestination.capabilities_for(FunctionSettings(module="acme_functions.crm"))
    settings = FunctionSettings(module="acme_plain", settings={"out": str(tmp_path / "calls.jsonl")})
    destination = FunctionDestination(settings, DestinationContext("dst-fn", "fn", tmp_path))
    try:
        outcomes = await destination.deliver([track("by-name")])
    finally:
        await destination.close()

    assert caps.deletes is True
    assert outcomes == [Outcome.delivered()]
    assert calls(tmp_path)[0]["handler"] == "on_track"
    assert "acme_plain" not in sys.modules


async def test_delete_user_calls_on_delete_with_a_delete_event(make: Make, tmp_path: Path) -> None:
    destination = await make(ALL_HANDLERS + "\ndef on_delete(event, settings): record('on_delete', event, settings)\n")

    outcome = await destination.delete_user(DeleteSubject("user-42", {"email": "ada@example.com"}))

    assert outcome == Outcome.delivered()
    event = calls(tmp_path)[0]["event"]
    assert (event["type"], event["userId"], event["identifiers"]) == ("delete", "user-42", {"email": "ada@example.com"})
    assert FunctionDestination.capabilities_for(destination.settings).deletes is True


async def test_delete_user_without_on_delete_fails(make: Make) -> None:
    destination = await make(ALL_HANDLERS)

    outcome = await destination.delete_user(DeleteSubject("user-42"))

    assert outcome.kind == "failed" and "no on_delete" in outcome.error
    assert FunctionDestination.capabilities_for(destination.settings).deletes is False


async def test_check_imports_the_module_and_wants_a_handler(make: Make) -> None:
    await (await make(ALL_HANDLERS, start=False)).check()

    with pytest.raises(ConfigError, match="defines no handler"):
        await (await make("x = 1", start=False)).check()
    with pytest.raises(ConfigError, match=r"SyntaxError: invalid syntax \(function_2.py, line \d+\)$"):
        await (await make("def on_track(:", start=False)).check()
    with pytest.raises(
        ConfigError, match=r"RuntimeError: no API key \(at function_3.py:\d+ in <module>\)\n--- output ---\nimporting"
    ):
        await (await make("print('importing')\nraise RuntimeError('no API key')", start=False)).check()


async def test_check_reports_a_missing_module(tmp_path: Path) -> None:
    settings = FunctionSettings(module=str(tmp_path / "absent.py"))
    destination = FunctionDestination(settings, DestinationContext("dst-fn", "fn", tmp_path))

    with pytest.raises(ConfigError, match="FileNotFoundError: no such file"):
        await destination.check()


async def test_a_module_that_cannot_load_is_retried_until_it_is_fixed(make: Make, tmp_path: Path) -> None:
    destination = await make("raise ImportError('needs the acme SDK')")

    [outcome] = await destination.deliver([track("early")])
    assert outcome.kind == "retry" and "ImportError: needs the acme SDK" in outcome.error

    Path(destination.settings.module).write_text(module_source(ALL_HANDLERS))
    assert await destination.deliver([track("later")]) == [Outcome.delivered()]


@pytest.mark.parametrize(
    "bad",
    [{"module": " "}, {"timeout_seconds": 0}, {"max_batch_size": 0}, {"memory_limit_mb": 10}, {"unknown": 1}],
)
def test_settings_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"module": "handlers.py", **bad}, FunctionSettings)
