"""Actions, as in Segment Actions: a trigger (FQL) that picks the events, and a mapping that
shapes their payload. A destination holds an ordered list; the first enabled action whose
trigger matches an event shapes it. When none matches, the event is not sent to that
destination and the caller records reason ``mapping_trigger``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from eventyard.errors import ConfigError
from eventyard.route import fql
from eventyard.route.mapping.compiler import Mapping, compile_mapping
from eventyard.route.mapping.errors import MappingError, child, describe, did_you_mean


class ActionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One action as configured: ``{name, trigger, mapping, enabled}``."""

    #: Shown in traces and metrics as the action that shaped a payload; unique per destination.
    name: str
    #: FQL, e.g. ``type = "track" and event = "Order Completed"``.
    trigger: str
    #: The mapping-kit mapping that builds the payload.
    mapping: dict[str, Any]
    enabled: bool = True


class CompiledAction:
    """An action ready to run: its trigger and mapping compiled."""

    __slots__ = ("enabled", "mapping", "name", "spec", "trigger")

    def __init__(self, spec: ActionSpec, trigger: fql.Expression, mapping: Mapping) -> None:
        self.spec = spec
        self.name = spec.name
        self.enabled = spec.enabled
        self.trigger = trigger
        self.mapping = mapping

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the trigger matches ``event`` (``enabled`` is not considered here)."""
        return self.trigger.matches(event)

    def payload(self, event: dict[str, Any]) -> dict[str, Any]:
        """The mapped payload for ``event``."""
        return self.mapping.apply(event)

    def __repr__(self) -> str:
        state = "" if self.enabled else ", disabled"
        return f"CompiledAction({self.name!r}, trigger={self.spec.trigger!r}{state})"


def compile_action(spec: ActionSpec | dict[str, Any], *, at: str = "$") -> CompiledAction:
    """Check and compile one action; raises ``MappingError`` (a ``ConfigError``) naming the location."""
    if not isinstance(spec, ActionSpec):
        spec = _convert(spec, at)
    if not spec.name.strip():
        raise MappingError(child(at, "name"), "an action needs a name")
    try:
        trigger = fql.compile(spec.trigger)
    except ConfigError as exc:
        raise MappingError(child(at, "trigger"), f"the trigger does not compile: {exc}") from exc
    return CompiledAction(spec, trigger, compile_mapping(spec.mapping, at=child(at, "mapping")))


def compile_actions(specs: Sequence[ActionSpec | dict[str, Any]]) -> list[CompiledAction]:
    """Compile a destination's actions in order. Names must be unique. Locations are ``$[i]...``."""
    actions: list[CompiledAction] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        action = compile_action(spec, at=f"$[{i}]")
        if action.name in seen:
            raise MappingError(
                f"$[{i}].name", f"the action name {action.name!r} is already used by action {seen[action.name]}"
            )
        seen[action.name] = i
        actions.append(action)
    return actions


def select_action(actions: Sequence[CompiledAction], event: dict[str, Any]) -> CompiledAction | None:
    """The first enabled action whose trigger matches ``event``, in order; ``None`` if there is none."""
    for action in actions:
        if action.enabled and action.trigger.matches(event):
            return action
    return None


class ActionSet:
    """A destination's actions as the routing table uses them: ``select`` gives the chosen
    action's name and payload, or ``None`` (reason ``mapping_trigger``)."""

    __slots__ = ("_enabled", "actions")

    def __init__(self, actions: Sequence[CompiledAction]) -> None:
        self.actions = tuple(actions)
        self._enabled = tuple(action for action in actions if action.enabled)

    def select(self, event: dict[str, Any]) -> tuple[str, Any] | None:
        for action in self._enabled:
            if action.trigger.matches(event):
                return action.name, action.mapping.apply(event)
        return None


def compile_action_set(specs: Sequence[ActionSpec | dict[str, Any]]) -> ActionSet:
    """``ActionSet`` over ``compile_actions(specs)``."""
    return ActionSet(compile_actions(specs))


def _convert(spec: Any, at: str) -> ActionSpec:
    if not isinstance(spec, dict):
        raise MappingError(at, f"an action is an object {{name, trigger, mapping, enabled}}, not {describe(spec)}")
    try:
        return msgspec.convert(spec, ActionSpec)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `")
        location = at + where.rstrip("`")[1:] if message else at
        message = message or str(exc)
        unknown = re.fullmatch(r"Object contains unknown field `(.+)`", message)
        if unknown:
            message += did_you_mean(unknown[1], ActionSpec.__struct_fields__, quoted=True)
        raise MappingError(location, message) from None
