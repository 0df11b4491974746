"""Tracking plans end to end on a real server: declared in workspace.yaml and applied, managed
with `eventyard plan ...`, enforced on events sent by analytics-python through a generated
typed module, with the reasons in the trace and the violation counts in the CLI."""

from __future__ import annotations

import importlib.util
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventyard.testing.server import ServerProcess, workspace_yaml
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow

PLAN_YAML = """
    tracking_plans:
      - name: shop
        rules:
          - type: TRACK
            key: Order Completed
            version: 1
            jsonSchema:
              type: object
              properties:
                properties:
                  type: object
                  required: [order_id]
                  properties:
                    order_id: {type: string}
                    total: {type: number}
"""

ATTACH = """        tracking_plan:
          plan: shop
          enforcement:
            track_unplanned_events: block
            track_violations: block
            track_unplanned_properties: omit
            forward_blocked_to: quarantine
      - name: quarantine
"""


def send(srv: ServerProcess, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        srv.url + "/v1/track",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    import base64

    req.add_header("Authorization", "Basic " + base64.b64encode(f"{srv.write_key}:".encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def steps(srv: ServerProcess, message_id: str) -> list[dict[str, Any]]:
    try:
        return list(srv.admin_get(f"/api/v1/trace/{message_id}").get("steps", []))
    except OSError:
        return []


def test_plans_on_a_running_server(tmp_path: Path) -> None:
    workspace = workspace_yaml() + ATTACH + PLAN_YAML
    srv = ServerProcess(tmp_path / "data")
    srv.prepare(workspace)
    srv.start()
    try:
        url = ["--url", srv.url, "--token", srv.admin_token]
        listed = srv.cli("plan", "list", *url, "--json")
        assert listed.returncode == 0, listed.stderr
        (plan,) = json.loads(listed.stdout)["data"]
        assert (plan["name"], plan["version"], plan["sources"]) == ("shop", 1, ["default"])

        # a new version through the CLI, with its diff and history
        exported = tmp_path / "shop.yaml"
        done = srv.cli("plan", "export", "shop", "-o", str(exported), *url)
        assert done.returncode == 0, done.stderr
        data = yaml.safe_load(exported.read_text())
        data["rules"][0]["jsonSchema"]["properties"]["properties"]["properties"]["coupon"] = {"type": "string"}
        exported.write_text(yaml.safe_dump(data))
        done = srv.cli("plan", "import", str(exported), *url)
        assert done.returncode == 0 and "version 2" in done.stdout, done.stderr
        assert "+ properties.coupon (string)" in srv.cli("plan", "diff", "shop", *url).stdout
        assert srv.cli("plan", "import", str(exported), *url).stdout.startswith("shop: no change")
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: shop\nrules: [{type: TRAK, key: x}]\n")
        refused = srv.cli("plan", "import", str(bad), *url)
        assert refused.returncode != 0 and "TRAK" in refused.stderr

        # the typed module, generated from the server's plan, sends through analytics-python
        module_path = tmp_path / "tracking.py"
        done = srv.cli("plan", "typegen", "shop", "-o", str(module_path), *url)
        assert done.returncode == 0, done.stderr
        spec = importlib.util.spec_from_file_location("tracking_shop", module_path)
        assert spec is not None and spec.loader is not None
        tracking = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tracking)
        from segment.analytics import Client

        client = Client(srv.write_key, host=srv.url, sync_mode=True, max_retries=1)
        tracking.order_completed({"order_id": "o-1", "total": 9.5}, user_id="u-1", client=client)
        client.track(user_id="u-1", event="Mystery", message_id="m-unplanned")
        client.flush()
        send(srv, {"userId": "u-1", "event": "Order Completed", "messageId": "m-bad", "properties": {"total": 1}})
        send(
            srv,
            {
                "userId": "u-1",
                "event": "Order Completed",
                "messageId": "m-extra",
                "properties": {"order_id": "o", "x": 1},
            },
        )

        def reasons(mid: str) -> list[str]:
            return [s.get("reason", "") for s in steps(srv, mid) if s.get("step") == "dropped"]

        assert eventually(lambda: reasons("m-unplanned"), bool, timeout=30) == ["tracking_plan_unplanned"]
        assert eventually(lambda: reasons("m-bad"), bool, timeout=30) == ["tracking_plan_violation"]
        accepted = eventually(lambda: steps(srv, "m-extra"), bool, timeout=30)
        assert [s["step"] for s in accepted if s["step"] == "dropped"] == []

        quarantined = eventually(
            lambda: srv.admin_get("/api/v1/sources/quarantine/events?limit=10")["data"],
            lambda d: len(d) == 2,
            timeout=30,
        )
        assert {i["event"]["messageId"] for i in quarantined} == {"m-unplanned", "m-bad"}

        def counted() -> str:
            return str(srv.cli("plan", "violations", "shop", *url, "--json").stdout)

        out = json.loads(eventually(counted, lambda s: "Mystery" in s and "properties.x" in s, timeout=30))
        kinds = {(v["eventName"], v["field"], v["violationType"]) for v in out["data"]}
        assert ("Mystery", "event", "Unplanned") in kinds
        assert ("Order Completed", "properties.order_id", "Required") in kinds
        table = srv.cli("plan", "violations", "--source", "default", *url)
        assert table.returncode == 0 and "Required" in table.stdout

        drafted = srv.cli("plan", "infer", "--source", "default", "--name", "draft", *url)
        assert drafted.returncode == 0, drafted.stderr
        draft = yaml.safe_load(drafted.stdout)
        assert draft["name"] == "draft"
        assert {r["key"] for r in draft["rules"] if r["type"] == "TRACK"} >= {"Order Completed", "Mystery"}

        # apply is idempotent over what the CLI changed? No: the file still says version 1's
        # rules, so apply shows the difference and would store them as version 3.
        ws_file = tmp_path / "ws.yaml"
        ws_file.write_text(workspace)
        dry = srv.cli("apply", "-f", str(ws_file), "--data-dir", str(srv.data_dir), "--dry-run")
        assert "~ tracking plan default/shop: version 2 -> 3" in dry.stdout, dry.stdout + dry.stderr
        exported_ws = srv.cli("export", "--data-dir", str(srv.data_dir))
        assert "tracking_plans:" in exported_ws.stdout and "forward_blocked_to: quarantine" in exported_ws.stdout
    finally:
        srv.stop()
