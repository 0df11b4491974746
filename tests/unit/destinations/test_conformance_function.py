"""The function destination passes the destination conformance suite, per event and with on_batch."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from eventyard.destinations.function import FunctionDestination, FunctionSettings
from eventyard.testing.conformance import DestinationConformance

HANDLERS = """
def record(events, settings):
    with open(settings["out"], "a") as f:
        f.writelines(event["messageId"] + "\\n" for event in events)

def on_track(event, settings): record([event], settings)
def on_identify(event, settings): record([event], settings)
async def on_page(event, settings): record([event], settings)
async def on_screen(event, settings): record([event], settings)
def on_group(event, settings): record([event], settings)
def on_alias(event, settings): record([event], settings)
"""
ON_DELETE = "\ndef on_delete(event, settings):\n    print('deleting', event['userId'])\n"
ON_BATCH = "\nasync def on_batch(events, settings):\n    record(events, settings)\n"


class FunctionTarget(DestinationConformance):
    source: ClassVar[str] = HANDLERS
    batch: ClassVar[bool] = False
    out: Path

    def make_destination(self, tmp_path: Path) -> FunctionDestination:
        self.out = tmp_path / "delivered.txt"
        module = tmp_path / "conforming_function.py"
        module.write_text(self.source)
        settings = FunctionSettings(module=str(module), settings={"out": str(self.out)}, batch=self.batch)
        return FunctionDestination(settings, self.context(tmp_path))

    def delivered_ids(self) -> set[str]:
        return set(self.out.read_text().split()) if self.out.exists() else set()


class TestFunctionConformance(FunctionTarget):
    source = HANDLERS + ON_DELETE


class TestFunctionBatchConformance(FunctionTarget):
    source = HANDLERS + ON_BATCH
    batch = True
