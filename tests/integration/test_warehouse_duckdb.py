"""Events sent with the official Segment SDK land in the DuckDB warehouse of a real server,
and `eventyard sql` / `eventyard warehouse describe` read them through the admin API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import segment.analytics.client as segment

from eventyard.testing.server import ServerProcess, workspace_yaml
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow

WORKSPACE = workspace_yaml() + (
    "    destinations:\n"
    "      - name: warehouse\n"
    "        type: duckdb\n"
    "        settings:\n"
    "          batch_size: 100\n"
    "          batch_age_seconds: 0.2\n"
    "    connections:\n"
    "      - source: default\n"
    "        destination: warehouse\n"
)


def sql(server: ServerProcess, query: str) -> dict[str, object]:
    done = server.cli("sql", query, "--url", server.url, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_segment_sdk_events_are_queryable_with_eventyard_sql(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.prepare(WORKSPACE)
    server.start()
    try:
        client = segment.Client(server.write_key, host=server.url, sync_mode=True, max_retries=0)
        for i in range(3):
            client.track(user_id=f"u{i}", event="Order Completed", properties={"revenue": 10 + i}, message_id=f"o{i}")
        client.identify(user_id="u0", traits={"plan": "pro", "name": "Ada"}, message_id="i0")

        def tables() -> set[str]:
            done = server.cli(
                "sql", "SELECT schema_name, table_name FROM duckdb_tables()", "--url", server.url, "--json"
            )
            return {f"{s}.{t}" for s, t in json.loads(done.stdout)["rows"]} if done.returncode == 0 else set()

        found = eventually(tables, lambda t: {"order_completed", "users"} <= {n.split(".")[1] for n in t}, timeout=30)
        [schema] = {n.split(".")[0] for n in found}
        assert schema.startswith("src_")  # one schema per source, named after the source id
        counts = eventually(
            lambda: sql(server, f"SELECT count(*), sum(revenue) FROM {schema}.order_completed")["rows"],
            lambda rows: rows == [[3, 33]],
            timeout=30,
        )
        assert counts == [[3, 33]]
        assert sql(server, f"SELECT id, plan, name FROM {schema}.users")["rows"] == [["u0", "pro", "Ada"]]

        refused = server.cli("sql", f"DELETE FROM {schema}.users", "--url", server.url)
        assert refused.returncode != 0 and "only read-only queries" in refused.stdout + refused.stderr

        described = server.cli("warehouse", "describe", "--url", server.url, "--json")
        assert described.returncode == 0, described.stderr
        by_table = {t["table"]: t for t in json.loads(described.stdout)["data"]}
        assert by_table["order_completed"]["columns"]["revenue"] == "BIGINT"
        assert by_table["tracks"]["columns"]["received_at"] == "TIMESTAMP"

        pretty = server.cli(
            "sql", f"SELECT event_text, count(*) AS n FROM {schema}.tracks GROUP BY 1", "--url", server.url
        )
        assert pretty.returncode == 0 and "Order Completed" in pretty.stdout and "1 row(s)" in pretty.stdout
    finally:
        server.stop()
