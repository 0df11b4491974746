"""Events sent with the official Segment SDK land in the DuckDB warehouse of a real server,
`eventyard sql` / `eventyard warehouse describe` read them through the admin API while the
server runs and straight from the file when it does not, and sources created after the first
start join the embedded warehouse in a schema named after them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import segment.analytics.client as segment

from eventyard.testing.server import ServerProcess, free_port, workspace_yaml
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
        # One schema per source, named after the source ("default" is an SQL keyword), besides
        # the identity tables' schema (docs/identity.md).
        [schema] = {n.split(".")[0] for n in found} - {"eventyard_identity"}
        assert schema == "_default"
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


NEW_SOURCE = """
workspaces:
  - name: default
    sources:
      - name: mobileApp
        write_key: wk-mobile-0001
"""


def send(url: str, write_key: str, **event: object) -> None:
    client = segment.Client(write_key, host=url, sync_mode=True, max_retries=0)
    client.track(**event)  # type: ignore[arg-type]


def test_new_sources_join_the_embedded_warehouse_and_sql_reads_the_file_without_a_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data)
    server.start()  # first start: the default source and the embedded warehouse, no workspace file
    try:
        [default] = server.admin_get("/api/v1/sources")["data"]
        workspace = tmp_path / "more.yaml"
        workspace.write_text(NEW_SOURCE)
        applied = server.cli("apply", "-f", str(workspace), "--data-dir", str(data), "--yes")
        assert applied.returncode == 0, applied.stderr + applied.stdout
        assert "mobileApp -> warehouse" in applied.stdout  # the automatic connection is shown
        send(server.url, default["writeKey"], user_id="u1", event="Opened", message_id="d-1")
        send(server.url, "wk-mobile-0001", user_id="u2", event="Opened", message_id="m-1")

        def counts() -> object:
            query = "SELECT (SELECT count(*) FROM default_source.opened), (SELECT count(*) FROM mobile_app.opened)"
            done = server.cli("sql", query, "--url", server.url, "--json")
            return json.loads(done.stdout)["rows"] if done.returncode == 0 else done.stderr

        assert eventually(counts, lambda rows: rows == [[1, 1]], timeout=30) == [[1, 1]]

        # While the server holds the file, nothing else may open it: a wrong --url says so.
        closed = f"http://127.0.0.1:{free_port()}"
        locked = server.cli("sql", "SELECT 1", "--url", closed, "--data-dir", str(data))
        assert locked.returncode != 0 and "open in a running eventyard server" in locked.stdout + locked.stderr
    finally:
        server.stop()

    # No server: the file is read directly, read-only, with the same guard.
    direct = server.cli("sql", "SELECT id FROM mobile_app.tracks", "--url", closed, "--data-dir", str(data), "--json")
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["rows"] == [["m-1"]]
    assert "reading" in direct.stderr and "warehouse.duckdb" in direct.stderr
    described = server.cli("warehouse", "describe", "--url", closed, "--data-dir", str(data), "--json")
    assert described.returncode == 0, described.stderr
    schemas = {t["schema"] for t in json.loads(described.stdout)["data"]}
    assert {"default_source", "mobile_app"} <= schemas
    refused = server.cli("sql", "DELETE FROM mobile_app.tracks", "--url", closed, "--data-dir", str(data))
    assert refused.returncode != 0 and "only read-only queries" in refused.stdout + refused.stderr
