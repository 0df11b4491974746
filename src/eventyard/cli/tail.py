"""`eventyard tail`: a live view of stored (and refused) events, from the admin SSE stream."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import msgspec
from rich.text import Text

from eventyard.cli.common import console, fail
from eventyard.control.audit import cli_agent


def render(item: dict[str, Any]) -> Text:
    if item["kind"] == "rejected":
        r = item["rejection"]
        line = Text(f"{r.get('receivedAt', '')[11:23]}  ", style="dim")
        line.append("REJECTED ", style="bold red")
        line.append(f"{r.get('reason')}: {r.get('message')}", style="red")
        if r.get("messageId"):
            line.append(f"  messageId={r['messageId']}", style="dim")
        return line
    e = item["event"]
    line = Text(f"{e.get('receivedAt', '')[11:23]}  ", style="dim")
    line.append(f"{e.get('type', '?'):<9}", style="bold cyan")
    name = e.get("event") or e.get("name") or e.get("groupId") or e.get("previousId") or ""
    line.append(f"{str(name)[:40]:<40} ")
    who = e.get("userId") or ""
    anon = e.get("anonymousId") or ""
    line.append(f"user={who} " if who else "", style="green")
    line.append(f"anon={anon} " if anon else "", style="dim green")
    line.append(f"{e.get('messageId', '')}", style="dim")
    return line


async def follow(url: str, token: str, params: list[tuple[str, str]], as_json: bool, limit: int | None) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream", "User-Agent": cli_agent()}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
    shown = 0
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url.rstrip("/") + "/api/v1/live", params=params, headers=headers) as resp,
    ):
        if resp.status != 200:
            body = await resp.text()
            fail(f"the server answered {resp.status}: {body[:300]}")
        if not as_json:
            console.print("[dim]following live events; Ctrl-C to stop[/]")
        data: list[str] = []
        async for raw in resp.content:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                item = msgspec.json.decode("\n".join(data))
                data = []
                if as_json:
                    sys.stdout.write(msgspec.json.encode(item).decode() + "\n")
                    sys.stdout.flush()
                else:
                    console.print(render(item), highlight=False)
                shown += 1
                if limit is not None and shown >= limit:
                    return


def run(
    url: str,
    token: str,
    source: str | None,
    types: list[str],
    events: list[str],
    rejected: bool,
    as_json: bool,
    recent: int,
    limit: int | None,
) -> None:
    params: list[tuple[str, str]] = [("rejected", "1" if rejected else "0")]
    if source:
        params.append(("source", source))
    params += [("type", t) for t in types] + [("event", e) for e in events]
    if recent:
        params.append(("recent", str(recent)))
    try:
        asyncio.run(follow(url, token, params, as_json, limit))
    except KeyboardInterrupt:
        pass
    except aiohttp.ClientError as exc:
        fail(f"cannot reach {url}: {exc}")
