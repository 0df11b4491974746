"""Syntax tree → one Python closure per node, built once per statement and called per event.

Parts that read no field are computed at compile time; comparisons against a literal, ``in``
with a literal list and ``match()`` with a literal pattern get specialised closures. No
closure raises for any JSON input: wrong types make a comparison false, as FQL specifies.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from eventyard.route.fql.errors import FqlError
from eventyard.route.fql.functions import FUNCTIONS
from eventyard.route.fql.glob import GlobError, compile_glob
from eventyard.route.fql.nodes import Call, Compare, Field, ListNode, Literal, Logical, Node, Not, is_constant
from eventyard.route.fql.values import hash_key, is_number, kind, strict_equal

Fn = Callable[[Any], Any]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def field_getter(segments: tuple[str, ...]) -> Fn:
    """Reads a path; anything missing on the way (or not an object) gives null."""
    if len(segments) == 1:
        (key,) = segments

        def get1(event: Any) -> Any:
            return event.get(key) if isinstance(event, dict) else None

        return get1
    steps = tuple((seg, int(seg) if seg.isdecimal() and seg.isascii() else None) for seg in segments)

    def get(event: Any) -> Any:
        value = event
        for key, index in steps:
            if isinstance(value, dict):
                value = value.get(key)
            elif index is not None and isinstance(value, list) and index < len(value):
                value = value[index]
            else:
                return None
        return value

    return get


class Compiler:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, message: str, pos: int) -> FqlError:
        return FqlError(message, pos, self.source)

    def build(self, node: Node) -> Fn:
        # Constant lists are not folded: every evaluation returns a fresh list a caller may change.
        if not isinstance(node, Literal | Field | ListNode) and is_constant(node):
            value = self.build_dynamic(node)(None)
            return lambda event: value
        return self.build_dynamic(node)

    def constant(self, node: Node) -> tuple[bool, Any]:
        """(True, value) when ``node`` reads no field."""
        if isinstance(node, Field) or not is_constant(node):
            return False, None
        return True, self.build(node)(None)

    def build_dynamic(self, node: Node) -> Fn:
        if isinstance(node, Literal):
            value = node.value
            return lambda event: value
        if isinstance(node, Field):
            return field_getter(node.segments)
        if isinstance(node, ListNode):
            items = tuple(self.build(item) for item in node.items)
            return lambda event: [item(event) for item in items]
        if isinstance(node, Not):
            inner = self.build(node.operand)
            return lambda event: inner(event) is not True
        if isinstance(node, Logical):
            return self.logical(node)
        if isinstance(node, Compare):
            return self.compare(node)
        return self.call(node)

    def logical(self, node: Logical) -> Fn:
        parts = tuple(self.build(operand) for operand in node.operands)
        if node.op == "and":
            if len(parts) == 2:
                a, b = parts
                return lambda event: a(event) is True and b(event) is True
            return lambda event: all(part(event) is True for part in parts)
        if len(parts) == 2:
            a, b = parts
            return lambda event: a(event) is True or b(event) is True
        return lambda event: any(part(event) is True for part in parts)

    def compare(self, node: Compare) -> Fn:
        if node.op == "in":
            return self.membership(node)
        if node.op in ("=", "!="):
            equal = self.equality(node)
            if node.op == "=":
                return equal
            return lambda event: not equal(event)
        compare = _ORDER[node.op]
        for side in (node.left, node.right):
            known, value = self.constant(side)
            if known and not is_number(value):
                raise self.error(f"'{node.op}' compares numbers, but this is {_a(kind(value))}", side.pos)
        left, right = self.build(node.left), self.build(node.right)

        def ordered(event: Any) -> bool:
            a = left(event)
            if not is_number(a):
                return False
            b = right(event)
            return is_number(b) and compare(a, b)

        return ordered

    def equality(self, node: Compare) -> Fn:
        known, value = self.constant(node.right)
        other = node.left
        if not known:
            known, value = self.constant(node.left)
            other = node.right
        if not known:
            left, right = self.build(node.left), self.build(node.right)
            return lambda event: strict_equal(left(event), right(event))
        get = self.build(other)
        if value is None or value is True or value is False:
            return lambda event: get(event) is value
        if isinstance(value, str):
            return lambda event: isinstance(v := get(event), str) and v == value
        if is_number(value):
            return lambda event: is_number(v := get(event)) and v == value
        return lambda event: strict_equal(get(event), value)

    def membership(self, node: Compare) -> Fn:
        item = self.build(node.left)
        known, container = self.constant(node.right)
        if not known:
            dynamic = self.build(node.right)

            def contained(event: Any) -> bool:
                values = dynamic(event)
                if not isinstance(values, list):
                    return False
                wanted = item(event)
                return any(strict_equal(wanted, v) for v in values)

            return contained
        if not isinstance(container, list):
            raise self.error(f"'in' needs a list on its right, but this is {_a(kind(container))}", node.right.pos)
        keys = {hash_key(v) for v in container} - {None}
        others = tuple(v for v in container if hash_key(v) is None)

        def in_list(event: Any) -> bool:
            wanted = item(event)
            key = hash_key(wanted)
            if key is not None:
                return key in keys
            return any(strict_equal(wanted, v) for v in others)

        return in_list

    def call(self, node: Call) -> Fn:
        args = tuple(self.build(arg) for arg in node.args)
        if node.name == "match":
            known, pattern = self.constant(node.args[1])
            if known:
                return self.literal_match(node, args[0], pattern)
        impl = FUNCTIONS[node.name].impl
        if len(args) == 1:
            (only,) = args
            return lambda event: impl(only(event))
        first, second = args
        return lambda event: impl(first(event), second(event))

    def literal_match(self, node: Call, subject: Fn, pattern: Any) -> Fn:
        where = node.args[1].pos
        if not isinstance(pattern, str):
            raise self.error(f"match() needs a string pattern, but this is {_a(kind(pattern))}", where)
        try:
            glob = compile_glob(pattern)
        except GlobError as exc:
            # Point into the pattern when it is written without escapes, else at its start.
            quote = self.source[where : where + 1]
            written = self.source[where : where + len(pattern) + 2] == quote + pattern + quote
            offset = where + 1 + exc.offset if isinstance(node.args[1], Literal) and written else where
            raise self.error(f"bad glob pattern: {exc}", offset) from None
        matches = glob.matches
        return lambda event: isinstance(s := subject(event), str) and matches(s)


def _a(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def build(node: Node, source: str) -> Fn:
    """The closure evaluating ``node``; raises ``FqlError`` for literal arguments of the wrong type."""
    return Compiler(source).build(node)
