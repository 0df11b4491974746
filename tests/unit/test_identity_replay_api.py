"""`POST /api/v1/destinations/{id}/replay` (what `eventyard replay` calls) re-stamps every
replayed event with the profile it belongs to now, in-process with a real webhook receiver."""

from __future__ import annotations

import asyncio
from typing import Any

from eventyard.testing.asgi import basic, call
from eventyard.testing.harness import AppHarness
from eventyard.testing.recorder import WebhookRecorder


def stamps(bodies: list[Any]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for body in bodies:
        for event in body if isinstance(body, list) else [body]:
            found[event["messageId"]] = event.get("context", {}).get("eventyard", {}).get("profileId")
    return found


async def test_replay_through_the_api_stamps_the_current_profile(harness: AppHarness) -> None:
    admin = {"Authorization": f"Bearer {harness.admin_token}", "Content-Type": "application/json"}
    async with WebhookRecorder() as hook:
        await harness.components.state.create_destination(
            harness.source.workspace_id, "hook", "webhook", settings={"url": hook.url}
        )
        connected = await call(
            harness.app, "PUT", "/api/v1/connections", {"source": "web", "destination": "hook"}, admin
        )
        assert connected.status == 200
        events = [
            ("/v1/page", {"anonymousId": "web-1", "messageId": "p1"}),
            ("/v1/track", {"anonymousId": "ios-1", "event": "Opened", "messageId": "t1"}),
            ("/v1/identify", {"anonymousId": "web-1", "userId": "sam", "messageId": "i1"}),
            ("/v1/identify", {"anonymousId": "ios-1", "userId": "sam", "messageId": "i2"}),
        ]
        for path, body in events:  # one at a time: each is resolved before the next
            sent = await call(harness.app, "POST", path, body, {"Authorization": basic(harness.write_key)})
            assert sent.status == 200
            async with asyncio.timeout(60):
                await hook.wait_for(len(hook.json_bodies()) + 1)
        first = stamps(hook.json_bodies())
        assert first["p1"] != first["t1"] and None not in first.values()
        profile = await call(
            harness.app,
            "GET",
            "/v1/spaces/default/collections/users/profiles/user_id:sam/metadata",
            headers={"Authorization": basic(harness.admin_token)},
        )
        sam = profile.json()["metadata"]["profile_id"]
        assert {first["p1"], first["t1"]} - {sam}  # one device's events went out under a profile merged away

        hook.clear()
        replayed = await call(harness.app, "POST", "/api/v1/destinations/hook/replay", {"from": 0}, admin)
        assert replayed.status == 200 and replayed.json()["queued"] == 4
        async with asyncio.timeout(60):
            while len(stamps(hook.json_bodies())) < 4:
                await hook.wait_for(len(hook.json_bodies()) + 1)
        assert stamps(hook.json_bodies()) == {"p1": sam, "t1": sam, "i1": sam, "i2": sam}
