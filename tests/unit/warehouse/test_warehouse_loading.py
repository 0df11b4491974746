"""Isolating the events a database refuses, and where each source's rows go."""

from __future__ import annotations

from datetime import UTC, datetime

from eventyard.destinations.base import Outcome
from eventyard.testing import events
from eventyard.warehouse import DUCKDB, POSTGRES, SourceSchemas, flatten_event
from eventyard.warehouse.batch import Grouped
from eventyard.warehouse.loading import Bisector

REFUSED = Outcome.failed("load_refused: no")


def loader(bad: set[int], calls: list[list[int]]) -> object:
    def load(part: list[int]) -> tuple[dict[int, str], Outcome | None]:
        calls.append(part)
        return {}, REFUSED if bad & set(part) else None

    return load


def test_the_refused_events_are_found_and_the_others_load() -> None:
    calls: list[list[int]] = []
    bisector = Bisector(list(range(100)))
    bisector.run(loader({17, 63}, calls))  # type: ignore[arg-type]
    assert bisector.outcomes == {17: REFUSED, 63: REFUSED}
    loaded = {i for part in calls for i in part if not {17, 63} & set(part)}
    assert loaded == set(range(100)) - {17, 63}
    assert len(calls) <= 30


def test_a_retryable_error_retries_the_whole_part_without_splitting() -> None:
    bisector = Bisector([1, 2, 3])
    busy = Outcome.retry("warehouse_unavailable: busy")
    bisector.run(lambda part: ({}, busy))
    assert bisector.outcomes == {1: busy, 2: busy, 3: busy} and bisector.loads == 1


def test_events_that_cannot_be_loaded_at_all_fail_on_their_own() -> None:
    bisector = Bisector([1, 2, 3])
    bisector.run(lambda part: ({2: "column_cap: too wide"}, None))
    assert bisector.outcomes == {2: Outcome.failed("column_cap: too wide")}


def test_an_error_no_event_caused_is_not_split() -> None:
    bisector = Bisector([1, 2, 3, 4])
    part = bisector.next()
    assert part == [1, 2, 3, 4]
    bisector.done(part, {}, REFUSED, isolate=False)
    assert bisector.next() is None and set(bisector.outcomes) == {1, 2, 3, 4}


def test_when_the_budget_is_spent_the_rest_is_retried_later() -> None:
    calls: list[list[int]] = []
    bisector = Bisector(list(range(64)), budget=5)
    bisector.run(loader(set(range(64)), calls))  # type: ignore[arg-type]
    assert len(calls) <= 5
    kinds = {o.kind for o in bisector.outcomes.values()}
    assert kinds <= {"failed", "retry"} and "retry" in kinds and len(bisector.outcomes) == 64


def test_schemas_follow_settings_then_source_names_then_ids() -> None:
    schemas = SourceSchemas(DUCKDB, {"src_1": "Main Site", "Shop": "store"}, "eventyard")
    assert schemas.known("") == "eventyard"
    assert schemas.known("src_1") == "main_site"
    assert schemas.known("src_2") is None
    assert schemas.resolve("src_2", "Shop") == "store"  # the settings may name a source by its name
    assert schemas.resolve("src_3", "select") == "_select"
    assert schemas.resolve("src_4", None) == "src_4"  # not known: the id, as it is
    assert schemas.known("src_3") == "_select" and schemas.known("src_4") is None
    prefixed = SourceSchemas(POSTGRES, {}, "eventyard", prefix="ey_")
    assert prefixed.resolve("src_5", "Web") == "ey_web" and prefixed.known("") == "ey_eventyard"


def test_a_subset_of_a_batch_keeps_only_its_events_rows_and_discards() -> None:
    loaded = datetime(2026, 11, 29, tzinfo=UTC)
    batch = [
        events.track("Clicked", {"id": "mine"}, message_id="a"),
        events.identify({"plan": "pro"}, message_id="b"),
        events.track("Clicked", message_id="c"),
    ]
    grouped = Grouped.of((i, "s", flatten_event(e, loaded_at=loaded, dialect=DUCKDB)) for i, e in enumerate(batch))
    part = grouped.subset([1, 2])
    assert part.events == [1, 2]
    assert {key: rows.indices for key, rows in part.rows.items()} == {
        ("s", "tracks"): [2],
        ("s", "clicked"): [2],
        ("s", "identifies"): [1],
        ("s", "users"): [1],
    }
    assert part.discards == {} and len(grouped.discards["s"]) == 1
