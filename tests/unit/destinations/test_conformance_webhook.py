"""The webhook destination passes the destination conformance suite, single and batched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from eventyard.destinations.webhook import WebhookDestination, WebhookSettings
from eventyard.testing.conformance import DestinationConformance
from eventyard.testing.recorder import WebhookRecorder


def message_ids(body: Any) -> set[str]:
    items = body if isinstance(body, list) else [body]
    return {item["messageId"] for item in items if isinstance(item, dict) and item.get("type") != "delete"}


class WebhookTarget(DestinationConformance):
    recorder: WebhookRecorder
    extra: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    async def target(self) -> AsyncIterator[None]:
        async with WebhookRecorder() as self.recorder:
            yield

    def make_destination(self, tmp_path: Path) -> WebhookDestination:
        settings = WebhookSettings(url=f"{self.recorder.url}/hook", secret="whsec-conformance-0123456789", **self.extra)
        return WebhookDestination(settings, self.context(tmp_path))

    def delivered_ids(self) -> set[str]:
        return {i for r in self.recorder.requests for i in message_ids(r.json)}


class TestWebhookConformance(WebhookTarget):
    extra: ClassVar[dict[str, Any]] = {"headers": {"Authorization": "Bearer conformance"}}


class TestWebhookBatchConformance(WebhookTarget):
    extra: ClassVar[dict[str, Any]] = {"batch": True, "max_batch_size": 50, "delete_events": True}
