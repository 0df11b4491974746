"""Names: Segment's go-snakecase, reserved words, identifier limits."""

from __future__ import annotations

import pytest

from eventyard.warehouse import DUCKDB, POSTGRES, STANDARD_TABLES, column_name, schema_name, snake_case, table_name


@pytest.mark.parametrize(
    ("raw", "snake"),
    [
        ("testCase", "test_case"),
        ("TestCase", "test_case"),
        (" Test Case ", "test_case"),
        ("numbers2and55with000", "numbers_2_and_55_with_000"),
        ("JSONData", "json_data"),
        ("userID", "user_id"),
        ("AAAbbb", "aa_abbb"),
        ("Order Completed", "order_completed"),
        ("context.app.version", "context_app_version"),
        ("already_snake", "already_snake"),
        ("Checkout -- Step #2!", "checkout_step_2"),
        ("!!!", ""),
    ],
)
def test_snake_case_follows_go_snakecase(raw: str, snake: str) -> None:
    assert snake_case(raw) == snake


def test_reserved_words_and_leading_digits_get_an_underscore() -> None:
    assert column_name("order", DUCKDB) == "_order"
    assert column_name("User", DUCKDB) == "_user"
    assert column_name("2fa enabled", DUCKDB) == "_2_fa_enabled"
    assert column_name("plan", DUCKDB) == "plan"


def test_long_names_are_cut_with_a_hash_so_they_stay_distinct() -> None:
    a = column_name("x" * 70 + "_first", POSTGRES)
    b = column_name("x" * 70 + "_second", POSTGRES)
    assert len(a) == len(b) == 63
    assert a != b
    assert column_name("x" * 70 + "_first", POSTGRES) == a  # deterministic


def test_event_tables_never_take_a_standard_table_name() -> None:
    assert table_name("Order Completed", DUCKDB, STANDARD_TABLES) == "order_completed"
    assert table_name("Identifies", DUCKDB, STANDARD_TABLES) == "_identifies"
    assert table_name("Group", DUCKDB, STANDARD_TABLES) == "_group"
    assert table_name("!!!", DUCKDB, STANDARD_TABLES) == "_unnamed"


def test_schema_names_are_source_slugs() -> None:
    assert schema_name("iOS App", DUCKDB) == "i_os_app"
    assert schema_name("Marketing Site", DUCKDB) == "marketing_site"
    assert schema_name("", DUCKDB) == "_unnamed"
