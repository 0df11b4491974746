"""``compile_mapping``: a mapping checked once and turned into closures, then applied per event.

A mapping is raw JSON values mixed with directives (objects with one ``@``-key). Raw
objects and lists are mapped recursively; strings, numbers, booleans and null are copied
as they are. Whatever resolves to ``MISSING`` is left out of an object and becomes ``null``
in a list, so a path that is not in the event simply does not appear in the payload.
"""

from __future__ import annotations

import math
from typing import Any

from eventyard.route.mapping.directives import DIRECTIVES, UNSUPPORTED
from eventyard.route.mapping.errors import MappingError, child, describe, did_you_mean
from eventyard.route.mapping.paths import MISSING, Node

#: A key the mapping kit allows beside a directive (editor metadata); it is ignored.
_METADATA = "_metadata"


def compile_node(spec: Any, at: str) -> Node:
    """Compile any piece of mapping found at location ``at``; raises ``MappingError``."""
    if isinstance(spec, dict):
        return _compile_object(spec, at)
    if isinstance(spec, list):
        return _compile_list(spec, at)
    if isinstance(spec, float) and not math.isfinite(spec):
        raise MappingError(at, f"{spec!r} is not a JSON number")
    if spec is None or isinstance(spec, str | bool | int | float):
        return _constant(spec)
    raise MappingError(at, f"{describe(spec)} ({spec!r}) is not a JSON value; quote it to make it a string")


def _constant(value: Any) -> Node:
    def constant(root: Any) -> Any:
        return value

    return constant


def _compile_list(spec: list[Any], at: str) -> Node:
    items = tuple(compile_node(item, child(at, i)) for i, item in enumerate(spec))

    def array(root: Any) -> Any:
        return [None if (value := item(root)) is MISSING else value for item in items]

    return array


def _compile_object(spec: dict[Any, Any], at: str) -> Node:
    for key in spec:
        if not isinstance(key, str):
            raise MappingError(child(at, str(key)), f"object keys must be strings, not {describe(key)}")
    directives = [key for key in spec if key.startswith("@")]
    if directives:
        return _compile_directive(spec, directives, at)
    # Strings, numbers, booleans and null are stored as they are and copied without a call;
    # everything else (directives, and objects and lists, which must be fresh per event) is a node.
    entries = tuple(
        (key, None, value) if _is_scalar(value) else (key, compile_node(value, child(at, key)), None)
        for key, value in spec.items()
    )

    def obj(root: Any) -> Any:
        out: dict[str, Any] = {}
        for key, node, constant in entries:
            if node is None:
                out[key] = constant
            elif (value := node(root)) is not MISSING:
                out[key] = value
        return out

    return obj


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value))


def _compile_directive(spec: dict[str, Any], names: list[str], at: str) -> Node:
    if len(names) > 1:
        found = ", ".join(names)
        raise MappingError(at, f"a directive object has exactly one @-key, this one has {len(names)}: {found}")
    name = names[0]
    others = [key for key in spec if key != name and key != _METADATA]
    if others:
        plain = ", ".join(repr(key) for key in others)
        raise MappingError(
            at, f"the directive {name} cannot share an object with other keys ({plain}); give it a key of its own"
        )
    compile_directive = DIRECTIVES.get(name)
    if compile_directive is None:
        if name in UNSUPPORTED:
            raise MappingError(at, f"{name} is not supported by eventyard: {UNSUPPORTED[name]}")
        raise MappingError(at, f"unknown directive {name}{did_you_mean(name, DIRECTIVES)}")
    return compile_directive(spec[name], child(at, name), compile_node)


class Mapping:
    """A compiled mapping. ``apply`` never raises on an event and never changes it.

    The payload may share nested objects and lists with the event (what ``@path`` picked
    up is not copied): treat both as read-only, or copy before changing them.
    """

    __slots__ = ("_node", "spec")

    def __init__(self, spec: dict[str, Any], node: Node) -> None:
        #: The mapping as it was written.
        self.spec = spec
        self._node = node

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        """The payload for ``event``. A mapping whose top level is a directive that resolves to
        anything but an object (a missing path, a list, ...) gives ``{}``."""
        out = self._node(event)
        return out if isinstance(out, dict) else {}

    def __repr__(self) -> str:
        return f"Mapping({self.spec!r})"


def compile_mapping(spec: dict[str, Any], *, at: str = "$") -> Mapping:
    """Check ``spec`` completely and compile it. Raises ``MappingError`` naming the location.

    ``at`` is the location reported for the top of ``spec`` (for mappings held in a larger
    document).
    """
    if not isinstance(spec, dict):
        raise MappingError(at, f"a mapping is an object (key → value or directive), not {describe(spec)}")
    return Mapping(spec, compile_node(spec, at))
