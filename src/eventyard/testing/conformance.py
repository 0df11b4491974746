"""The conformance suite every destination must pass, built-in or third-party.

Subclass :class:`DestinationConformance` in a test module, in a class whose name starts with
``Test``; pytest collects the inherited tests. Provide two methods (each may be sync or async):

``make_destination(tmp_path)``
    A new, unstarted destination whose target is fresh for this test (an empty directory, a
    recorder started in a fixture of the subclass, ...). The suite starts and closes it.
``delivered_ids()``
    The message ids that actually reached that target.

::

    class TestMyCrmConformance(DestinationConformance):
        @pytest.fixture(autouse=True)
        async def crm(self) -> AsyncIterator[None]:
            async with WebhookRecorder() as self.recorder:
                yield

        def make_destination(self, tmp_path: Path) -> Destination:
            settings = MyCrmSettings(url=self.recorder.url, api_key="sk-test-0123456789")
            return MyCrmDestination(settings, self.context(tmp_path))

        def delivered_ids(self) -> set[str]:
            return {r.json["messageId"] for r in self.recorder.requests}

The tests need ``pytest-asyncio``; they are marked explicitly, so any ``asyncio_mode`` works.
Events come from ``eventyard.testing.events`` (deterministic, every type the destination's
``capabilities_for(settings).event_types`` lists); the target is expected to accept them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
import pytest_asyncio

from eventyard.destinations import registry
from eventyard.destinations.base import (
    ALL_EVENT_TYPES,
    Capabilities,
    DeleteSubject,
    DeliveryEvent,
    Destination,
    DestinationContext,
    Outcome,
    redact,
    secret_fields,
)
from eventyard.testing import events

#: Settings names that look like they hold a secret; such a string field must be ``Secret``.
SECRET_LOOKING = re.compile(r"secret|password|passwd|token|api_?key|private_?key|credential", re.IGNORECASE)
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DestinationConformance:
    """Base class of a destination's conformance test class (see the module docstring)."""

    #: The largest batch the full-batch test sends, when ``capabilities.batch_size`` is larger.
    max_batch_events: ClassVar[int] = 1000
    #: Settings fields whose names look secret but are not (e.g. ``token_url``).
    not_secret_fields: ClassVar[frozenset[str]] = frozenset()

    # -- what a subclass provides ---------------------------------------------------------

    def make_destination(self, tmp_path: Path) -> Destination | Awaitable[Destination]:
        raise NotImplementedError("override make_destination(tmp_path) to return an unstarted destination")

    def delivered_ids(self) -> set[str] | Awaitable[set[str]]:
        raise NotImplementedError("override delivered_ids() to return the message ids that reached the target")

    # -- helpers ---------------------------------------------------------------------------

    def context(self, tmp_path: Path, name: str = "conformance") -> DestinationContext:
        """A ``DestinationContext`` with its data directory under ``tmp_path``."""
        data_dir = tmp_path / "destination-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        return DestinationContext(destination_id=f"dst-{name}", name=name, data_dir=data_dir)

    async def new_destination(self, tmp_path: Path) -> Destination:
        made = self.make_destination(tmp_path)
        destination = await made if inspect.isawaitable(made) else made
        assert isinstance(destination, Destination), f"make_destination returned {type(destination).__name__}"
        return destination

    async def reached_target(self) -> set[str]:
        found = self.delivered_ids()
        ids = await found if inspect.isawaitable(found) else found
        return set(ids)

    @staticmethod
    def capabilities_of(destination: Destination) -> Capabilities:
        return type(destination).capabilities_for(destination.settings)

    def sample(self, destination: Destination, count: int, prefix: str) -> list[DeliveryEvent]:
        """Up to ``count`` events of the accepted types, within ``capabilities.batch_bytes``."""
        caps = self.capabilities_of(destination)
        out: list[DeliveryEvent] = []
        size = 0
        for event in events.sample(count, types=caps.event_types, prefix=prefix):
            size += len(msgspec.json.encode(event))
            if out and size > caps.batch_bytes:
                break
            out.append(events.delivery(event))
        return out

    @staticmethod
    def assert_all_delivered(outcomes: Any, batch: list[DeliveryEvent]) -> None:
        assert isinstance(outcomes, list), f"deliver must return a list, got {type(outcomes).__name__}"
        assert len(outcomes) == len(batch), f"{len(batch)} events in, {len(outcomes)} outcomes out"
        for item, outcome in zip(batch, outcomes, strict=True):
            assert isinstance(outcome, Outcome), f"{item.message_id}: got {outcome!r}, not an Outcome"
            assert outcome.kind == "delivered", f"{item.message_id} ({item.event['type']}): {outcome!r}"

    # -- fixture ---------------------------------------------------------------------------

    @pytest_asyncio.fixture
    async def conformance_destination(self, tmp_path: Path) -> AsyncIterator[Destination]:
        destination = await self.new_destination(tmp_path)
        await destination.start()
        try:
            yield destination
        finally:
            await destination.close()

    # -- the suite -------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_settings_are_a_strict_struct(self, conformance_destination: Destination) -> None:
        settings_type = type(conformance_destination).Settings
        assert isinstance(settings_type, type) and issubclass(settings_type, msgspec.Struct)
        assert settings_type.__struct_config__.forbid_unknown_fields, "declare forbid_unknown_fields=True"
        settings = conformance_destination.settings
        assert isinstance(settings, settings_type), "the destination's settings are not of its Settings type"
        data = msgspec.to_builtins(settings)
        assert msgspec.convert(data, settings_type) == settings, "settings do not survive a round trip"
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({**data, "no_such_setting_0xc0ffee": 1}, settings_type)

    @pytest.mark.asyncio
    async def test_name_and_capabilities_are_sane(self, conformance_destination: Destination) -> None:
        cls = type(conformance_destination)
        assert isinstance(cls.name, str) and NAME.match(cls.name), f"name {cls.name!r}: lower_snake_case"
        for caps in (cls.capabilities, self.capabilities_of(conformance_destination)):
            assert isinstance(caps, Capabilities)
            assert caps.batch_size >= 1 and caps.batch_bytes >= 1024 and caps.concurrency >= 1
            assert caps.batch_age_seconds >= 0
            assert caps.event_types and caps.event_types <= ALL_EVENT_TYPES, f"event_types {set(caps.event_types)}"

    @pytest.mark.asyncio
    async def test_registered_under_its_name(self, conformance_destination: Destination) -> None:
        cls = type(conformance_destination)
        assert registry.load(cls.name) is cls, f"entry point {cls.name!r} in group {registry.GROUP!r}"

    @pytest.mark.asyncio
    async def test_empty_batch_gives_no_outcomes(self, conformance_destination: Destination) -> None:
        assert await conformance_destination.deliver([]) == []
        assert await self.reached_target() == set()

    @pytest.mark.asyncio
    async def test_delivers_a_single_event(self, conformance_destination: Destination) -> None:
        batch = self.sample(conformance_destination, 1, "single")
        self.assert_all_delivered(await conformance_destination.deliver(batch), batch)
        assert await self.reached_target() == {batch[0].message_id}

    @pytest.mark.asyncio
    async def test_delivers_a_full_batch(self, conformance_destination: Destination) -> None:
        size = min(self.capabilities_of(conformance_destination).batch_size, self.max_batch_events)
        batch = self.sample(conformance_destination, size, "full")
        self.assert_all_delivered(await conformance_destination.deliver(batch), batch)
        assert await self.reached_target() >= {e.message_id for e in batch}

    @pytest.mark.asyncio
    @pytest.mark.parametrize("event_type", sorted(ALL_EVENT_TYPES))
    async def test_delivers_every_accepted_type(self, conformance_destination: Destination, event_type: str) -> None:
        if event_type not in self.capabilities_of(conformance_destination).event_types:
            pytest.skip(f"{event_type} is not in capabilities.event_types")
        batch = [events.delivery(events.of_type(event_type, 7, prefix=f"type-{event_type}"))]
        self.assert_all_delivered(await conformance_destination.deliver(batch), batch)
        assert batch[0].message_id in await self.reached_target()

    @pytest.mark.asyncio
    async def test_delivered_events_reach_the_target(self, conformance_destination: Destination) -> None:
        batch_size = self.capabilities_of(conformance_destination).batch_size
        batch = self.sample(conformance_destination, min(batch_size, 12), "reach")
        outcomes = await conformance_destination.deliver(batch)
        delivered = {e.message_id for e, o in zip(batch, outcomes, strict=True) if o.kind == "delivered"}
        missing = delivered - await self.reached_target()
        assert not missing, f"reported delivered but not at the target: {sorted(missing)}"

    @pytest.mark.asyncio
    async def test_redelivery_is_harmless(self, conformance_destination: Destination) -> None:
        batch_size = self.capabilities_of(conformance_destination).batch_size
        first = self.sample(conformance_destination, min(batch_size, 6), "again")
        again = [msgspec.structs.replace(e, attempt=2) for e in first]
        self.assert_all_delivered(await conformance_destination.deliver(first), first)
        self.assert_all_delivered(await conformance_destination.deliver(again), again)
        assert await self.reached_target() >= {e.message_id for e in first}

    @pytest.mark.asyncio
    async def test_check_delivers_nothing(self, conformance_destination: Destination) -> None:
        await conformance_destination.check()
        assert await self.reached_target() == set(), "check() must not deliver anything"

    @pytest.mark.asyncio
    async def test_redact_hides_every_secret(self, conformance_destination: Destination) -> None:
        settings = conformance_destination.settings
        declared = secret_fields(type(settings))
        if not declared:
            return  # nothing to hide (test_secret_looking_fields_are_declared_secret checks the names)
        secrets = {n: getattr(settings, n) for n in declared}
        secrets = {n: v for n, v in secrets.items() if isinstance(v, str) and v}
        if not secrets:
            pytest.skip("no Secret field has a value in these settings; set one to test redaction")
        shown = redact(settings)
        for name, value in secrets.items():
            assert value not in str(shown.get(name)), f"redact shows the secret {name!r}"
            assert value not in repr(shown), f"redact shows the secret {name!r} elsewhere"

    @pytest.mark.asyncio
    async def test_secret_looking_fields_are_declared_secret(self, conformance_destination: Destination) -> None:
        settings_type = type(conformance_destination).Settings
        declared = secret_fields(settings_type)
        info = msgspec.inspect.type_info(settings_type)
        assert isinstance(info, msgspec.inspect.StructType)
        suspicious = {
            f.name
            for f in info.fields
            if SECRET_LOOKING.search(f.name) and _holds_str(f.type) and f.name not in self.not_secret_fields
        }
        undeclared = sorted(suspicious - declared)
        assert not undeclared, f"annotate as eventyard.destinations.base.Secret: {undeclared}"

    @pytest.mark.asyncio
    async def test_start_and_close_are_idempotent(self, tmp_path: Path) -> None:
        destination = await self.new_destination(tmp_path)
        await destination.close()  # never started: nothing to release, no error
        await destination.start()
        try:
            batch = self.sample(destination, 1, "restart")
            self.assert_all_delivered(await destination.deliver(batch), batch)
        finally:
            await destination.close()
        await destination.close()

    @pytest.mark.asyncio
    async def test_delete_user_returns_an_outcome(self, conformance_destination: Destination) -> None:
        outcome = await conformance_destination.delete_user(DeleteSubject(user_id="user-0001"))
        assert isinstance(outcome, Outcome), f"delete_user returned {outcome!r}"
        if self.capabilities_of(conformance_destination).deletes:
            assert outcome.kind == "delivered", f"capabilities.deletes is set, but: {outcome!r}"
        else:
            assert outcome.kind == "failed", f"capabilities.deletes is False, so delete_user must fail: {outcome!r}"
            assert outcome.error, "say why the deletion failed"


def _holds_str(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        return _holds_str(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_holds_str(m) for m in t.types)
    return isinstance(t, msgspec.inspect.StrType)
