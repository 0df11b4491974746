"""Consent and PII on a real server, configured with the CLI: a destination in a category
without consent gets nothing and the trace and delivery overview say ``consent``; an email
hashed by a PII rule reaches one webhook hashed and the other raw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import segment.analytics.client as segment

from eventyard.privacy.pii_classify import hash_value
from eventyard.testing.recorder import WebhookRecorder
from eventyard.testing.server import ServerProcess, workspace_yaml
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


def workspace(hook: str) -> str:
    return workspace_yaml() + (
        "    destinations:\n"
        "      - name: ads\n"
        "        type: webhook\n"
        f"        settings: {{url: '{hook}/ads', timeout_seconds: 2}}\n"
        "      - name: warehouse\n"
        "        type: webhook\n"
        f"        settings: {{url: '{hook}/wh', timeout_seconds: 2}}\n"
        "    connections:\n"
        "      - {source: default, destination: ads}\n"
        "      - {source: default, destination: warehouse}\n"
    )


def cli_json(server: ServerProcess, *args: str) -> Any:
    done = server.cli(*args, "--url", server.url, "--token", server.admin_token, "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def test_consent_and_pii_end_to_end(tmp_path: Path) -> None:
    with WebhookRecorder().in_thread() as hook:
        server = ServerProcess(tmp_path / "data")
        server.prepare(workspace(hook.url))
        server.start()
        try:
            data = cli_json(server, "consent", "add", "Advertising", "--name", "Ads", "-d", "ads")
            assert data["categories"] == [{"id": "Advertising", "name": "Ads", "destinations": ["ads"]}]
            added = server.cli(
                "pii", "add", "hash", "--path", "properties.email", "--kind", "email", "-o", "warehouse=allow",
                "--url", server.url, "--token", server.admin_token,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            rules = cli_json(server, "pii", "rules")
            assert rules["rules"] == [
                {"action": "hash", "path": "properties.email", "kind": "email", "destinations": {"warehouse": "allow"}}
            ]

            client = segment.Client(server.write_key, host=server.url, sync_mode=True, max_retries=0)
            no_consent = {"consent": {"categoryPreferences": {}}}
            ads_ok = {"consent": {"categoryPreferences": {"Advertising": True}}}
            client.track(user_id="u1", event="Viewed", message_id="e-refused", context=no_consent)
            client.track(
                user_id="u1",
                event="Signed Up",
                message_id="e-email",
                context=ads_ok,
                properties={"email": "Ana@Example.com", "plan": "pro"},
            )
            eventually(lambda: len(hook.requests), lambda n: n >= 3, timeout=30)
            by_path: dict[str, dict[str, Any]] = {}
            for r in hook.requests:
                by_path.setdefault(r.path, {})[r.json["messageId"]] = r.json
            assert sorted(by_path["/wh"]) == ["e-email", "e-refused"]
            assert sorted(by_path["/ads"]) == ["e-email"], "the ads destination needs Advertising consent"
            assert by_path["/ads"]["e-email"]["properties"] == {
                "email": hash_value("email", "ana@example.com"),
                "plan": "pro",
            }
            assert by_path["/wh"]["e-email"]["properties"] == {"email": "Ana@Example.com", "plan": "pro"}

            trace = cli_json(server, "trace", "e-refused")["steps"]
            refused = [s for s in trace if s["step"] == "filtered"]
            assert len(refused) == 1 and refused[0]["reason"] == "consent"
            assert "Advertising" in refused[0]["detail"]
            status = cli_json(server, "status")
            ads = next(d for d in status["destinations"] if d["name"] == "ads")
            assert ads["totals"]["filtered"] == {"consent": 1}
            assert ads["filtered_labels"] == {"consent": "Filtered by end user consent"}

            report = eventually(lambda: cli_json(server, "pii", "report"), lambda rows: bool(rows), timeout=10)
            assert [(r["path"], r["kind"], r["count"], r["action"]) for r in report] == [
                ("properties.email", "email", 1, "hash")
            ]
            table = server.cli("pii", "report", "--url", server.url, "--token", server.admin_token)
            assert table.returncode == 0 and "properties.email" in table.stdout and "hash" in table.stdout
            classify = server.cli(
                "pii", "classify", "4111 1111 1111 1111", "--url", server.url, "--token", server.admin_token
            )
            assert "card" in classify.stdout and "1111" in classify.stdout
            removed = server.cli("consent", "remove", "Advertising", "--url", server.url, "--token", server.admin_token)
            assert removed.returncode == 0 and cli_json(server, "consent", "list")["categories"] == []
            bad = server.cli("consent", "add", "9lives", "--url", server.url, "--token", server.admin_token)
            assert bad.returncode != 0 and "must not start with a digit" in bad.stderr

            strategy = cli_json(server, "consent", "strategy", "ads", "or")
            assert strategy["strategies"] == {"ads": "or"}
            rules_file = tmp_path / "pii.yaml"
            rules_file.write_text("detect: false\nrules:\n  - {kind: card, action: block}\n")
            replaced = server.cli(
                "pii", "set", "-f", str(rules_file), "--url", server.url, "--token", server.admin_token
            )
            assert replaced.returncode == 0, replaced.stderr
            assert cli_json(server, "pii", "rules")["rules"] == [{"action": "block", "kind": "card"}]
            rules_file.write_text("rules: [{kind: card, action: shred}]\n")
            refused = server.cli(
                "pii", "set", "-f", str(rules_file), "--url", server.url, "--token", server.admin_token
            )
            assert refused.returncode != 0 and "action must be one of" in refused.stderr
            off = server.cli("pii", "off", "--url", server.url, "--token", server.admin_token)
            assert off.returncode == 0 and "removed" in off.stdout
            assert cli_json(server, "pii", "rules")["version"] == 0
        finally:
            server.stop()
