"""`eventyard status`, `trace`, `replay`, `dead-letters`: delivery, seen from the command line."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from eventyard.cli.api import call
from eventyard.cli.common import console


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def status(url: str, token: str, window: int, as_json: bool) -> None:
    data = call(url, token, "GET", "/api/v1/overview", params={"window": window})
    if as_json:
        print(json.dumps(data, indent=2))
        return
    pipeline = data["pipeline"]
    dropped = ", ".join(f"{k} {v}" for k, v in pipeline["dropped"].items()) or "none"
    console.print(f"last {window // 60} min: {pipeline['accepted']:,} events accepted; dropped in pipeline: {dropped}")
    table = Table(title="delivery overview")
    for col in (
        "destination",
        "health",
        "received",
        "filtered",
        "delivered",
        "retrying",
        "dead",
        "queue",
        "p50 ms",
        "p99 ms",
    ):
        table.add_column(col, justify="right" if col not in ("destination", "health", "filtered") else "left")
    for d in data["destinations"]:
        t = d["totals"]
        filtered = ", ".join(f"{k} {v}" for k, v in t["filtered"].items()) or "0"
        health = d["health"]["status"]
        health_text = f"[red]{health}[/]" if health != "healthy" else "[green]healthy[/]"
        if not d["enabled"]:
            health_text += " (disabled)"
        q = d["queue"]
        table.add_row(
            f"{d['name']} ({d['type']})",
            health_text,
            f"{t['received']:,}",
            filtered,
            f"{t['delivered']:,}",
            f"{t['retrying']:,}",
            f"{t['dead_lettered']:,}",
            f"{q['ready'] + q['in_flight'] + q['waiting_retry']:,}",
            _ms(d["latency_ms"]["p50"]),
            _ms(d["latency_ms"]["p99"]),
        )
    console.print(table)
    for d in data["destinations"]:
        if d["health"]["status"] != "healthy":
            console.print(f"[red]{d['name']} is degraded:[/] {d['health'].get('reason', '')}")
        for alert in d.get("alerts", []):
            console.print(f"[yellow]{d['name']}: {alert['code']}:[/] {alert['message']}", highlight=False)


def trace(url: str, token: str, message_id: str, as_json: bool) -> None:
    data = call(url, token, "GET", f"/api/v1/trace/{message_id}")
    if as_json:
        print(json.dumps(data, indent=2))
        return
    table = Table(title=f"messageId {message_id}")
    for col in ("at", "step", "destination", "attempt", "why"):
        table.add_column(col)
    for s in data["steps"]:
        why = " ".join(x for x in (s.get("reason", ""), s.get("detail", "")) if x)
        if "latencyMs" in s:
            why = (why + f" latency {s['latencyMs']} ms").strip()
        style = {
            "delivered": "green",
            "filtered": "yellow",
            "dropped": "yellow",
            "discarded": "yellow",
            "dead_lettered": "red",
            "retrying": "red",
        }
        step = s["step"]
        table.add_row(
            s["at"], f"[{style.get(step, 'white')}]{step}[/]", s.get("destination", ""), str(s.get("attempt", "")), why
        )
    console.print(table)


def replay(url: str, token: str, destination: str, start: str, end: str | None, sources: list[str]) -> None:
    body: dict[str, Any] = {"from": start}
    if end:
        body["to"] = end
    if sources:
        body["sources"] = sources
    with console.status(f"replaying into {destination}…"):
        data = call(url, token, "POST", f"/api/v1/destinations/{destination}/replay", body)
    console.print(
        f"replay into {data['destination']}: {data['read']:,} stored events read, "
        f"{data['queued']:,} queued, {data['filtered']:,} filtered"
    )


def dead_letters(url: str, token: str, destination: str, resend: list[int], resend_all: bool, limit: int) -> None:
    if resend or resend_all:
        body: dict[str, Any] = {"all": True} if resend_all else {"ids": resend}
        data = call(url, token, "POST", f"/api/v1/destinations/{destination}/dead-letters/resend", body)
        console.print(f"re-sent {data['resent']:,} dead-lettered job(s) to {destination}")
        return
    data = call(url, token, "GET", f"/api/v1/destinations/{destination}/dead-letters", params={"limit": limit})
    table = Table(title=f"dead letters of {destination}")
    for col in ("id", "messageId", "attempts", "error"):
        table.add_column(col)
    for d in data["data"]:
        table.add_row(str(d["id"]), d["messageId"], str(d["attempts"]), d["error"])
    console.print(table)
    if not data["data"]:
        console.print("no dead letters")
