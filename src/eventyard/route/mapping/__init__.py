"""Mappings in the spirit of Segment Actions' mapping kit, and trigger + mapping actions.

Pure: no I/O. Compile once (every problem is reported with its location in the mapping),
apply per event (precompiled closures, paths parsed once)::

    mapping = compile_mapping({"email": {"@path": "$.traits.email"}, "source": "web"})
    mapping.apply(event)            # {"email": "ann@example.com", "source": "web"}

    actions = compile_actions([{"name": "orders", "trigger": 'event = "Order Completed"',
                                "mapping": {...}}])
    action = select_action(actions, event)  # None → reason "mapping_trigger"
    payload = action.payload(event) if action else None

Layout: ``paths`` (event paths, ``MISSING``), ``text`` (templates, JSON text), ``options``
(checking a directive's options), ``directives`` (one compiler per directive), ``compiler``
(raw values, the shape of directives, ``Mapping``), ``actions`` (trigger + mapping), ``errors``.
``docs/mappings.md`` describes every directive.
"""

from eventyard.route.mapping.actions import (
    ActionSet,
    ActionSpec,
    CompiledAction,
    compile_action,
    compile_action_set,
    compile_actions,
    select_action,
)
from eventyard.route.mapping.compiler import Mapping, compile_mapping
from eventyard.route.mapping.directives import DIRECTIVES
from eventyard.route.mapping.errors import MappingError

__all__ = [
    "DIRECTIVES",
    "ActionSet",
    "ActionSpec",
    "CompiledAction",
    "Mapping",
    "MappingError",
    "compile_action",
    "compile_action_set",
    "compile_actions",
    "compile_mapping",
    "select_action",
]
