"""The FQL syntax tree. Every node keeps ``pos``, its offset in the source, for error messages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number, ``true``, ``false`` or ``null`` written in the statement."""

    value: Any
    pos: int


@dataclass(frozen=True, slots=True)
class Field:
    """A field path such as ``context.page.url``: the segments, unescaped."""

    segments: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class ListNode:
    """``['a', 'b']``."""

    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(arg, ...)``; the name is a known function (checked by the parser)."""

    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    """``! operand``."""

    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Logical:
    """``a and b and c`` or ``a or b or c``: one node for a run of the same operator."""

    op: str
    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with op one of ``= != > >= < <= in``."""

    op: str
    left: Node
    right: Node
    pos: int


Node = Literal | Field | ListNode | Call | Not | Logical | Compare


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, ListNode):
        return node.items
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Logical):
        return node.operands
    if isinstance(node, Compare):
        return (node.left, node.right)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def is_constant(node: Node) -> bool:
    """True when the node reads no field, so its value is the same for every event."""
    return not any(isinstance(n, Field) for n in walk(node))
