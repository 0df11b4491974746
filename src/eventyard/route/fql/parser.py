"""Recursive-descent parser: tokens → syntax tree.

Grammar, loosest binding first::

    statement  := or EOF
    or         := and ( "or" and )*
    and        := not ( "and" not )*
    not        := "!" not | comparison
    comparison := operand [ ( "=" | "!=" | ">" | ">=" | "<" | "<=" | "in" ) operand ]
    operand    := STRING | NUMBER | "true" | "false" | "null" | field | call | list | "(" or ")"
    call       := NAME "(" [ or ( "," or )* ] ")"
    list       := "[" [ operand ( "," operand )* ] "]"

``!`` binds looser than a comparison: ``!type = 'track'`` means ``!(type = 'track')``.
Comparisons do not chain (``a = b = c`` is an error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from eventyard.route.fql.errors import FqlError
from eventyard.route.fql.functions import FUNCTIONS
from eventyard.route.fql.lexer import KEYWORDS, Token, tokenize
from eventyard.route.fql.nodes import Call, Compare, Field, ListNode, Literal, Logical, Node, Not

_CONSTANTS = {"true": True, "false": False, "null": None}
_COMPARISONS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_MAX_DEPTH = 64


def describe(token: Token) -> str:
    return "the end of the statement" if token.kind == "eof" else repr(token.text)


class Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.depth = 0

    # -- helpers ---------------------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.token.kind == "keyword" and self.token.value == word

    def error(self, message: str, pos: int) -> FqlError:
        return FqlError(message, pos, self.source)

    def expect_value_error(self) -> FqlError:
        token = self.token
        if self.i == 0:
            if token.kind == "eof":
                return self.error("the statement is empty", 0)
            return self.error(f"expected a field, a value or '(' but found {describe(token)}", token.pos)
        after = self.tokens[self.i - 1].text
        found = "" if token.kind == "eof" else f" but found {describe(token)}"
        return self.error(f"expected a value after '{after}'{found}", token.pos)

    # -- grammar ---------------------------------------------------------------------------

    def statement(self) -> Node:
        node = self.or_()
        token = self.token
        if token.kind != "eof":
            raise self.error(self.trailing_message(token), token.pos)
        return node

    def trailing_message(self, token: Token) -> str:
        message = f"unexpected {describe(token)} after a complete expression"
        if token.kind == "op":
            return message + " (comparisons do not chain: join them with 'and')"
        if token.kind == "field" and token.plain and str(token.text).lower() in KEYWORDS:
            return message + f" (keywords are lowercase: did you mean '{str(token.text).lower()}'?)"
        if token.kind in ("field", "string", "number", "keyword", "(", "!"):
            return message + " (missing 'and' or 'or'?)"
        return message

    def or_(self) -> Node:
        return self.logical("or", self.and_)

    def and_(self) -> Node:
        return self.logical("and", self.not_)

    def logical(self, word: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        if not self.at_keyword(word):
            return first
        operands = [first]
        while self.at_keyword(word):
            self.advance()
            operands.append(operand())
        return Logical(word, tuple(operands), first.pos)

    def not_(self) -> Node:
        if self.token.kind == "!":
            pos = self.advance().pos
            with self.nested(pos):
                return Not(self.not_(), pos)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        token = self.token
        if (token.kind == "op" and token.value in _COMPARISONS) or self.at_keyword("in"):
            self.advance()
            right = self.operand()
            return Compare(str(token.value), left, right, token.pos)
        return left

    def operand(self) -> Node:
        token = self.token
        kind = token.kind
        if kind in ("string", "number"):
            self.advance()
            return Literal(token.value, token.pos)
        if kind == "keyword" and token.value in _CONSTANTS:
            self.advance()
            return Literal(_CONSTANTS[token.value], token.pos)
        if kind == "field":
            self.advance()
            if token.plain and self.token.kind == "(":
                return self.call(token)
            return Field(token.value, token.pos)
        if kind == "(":
            self.advance()
            with self.nested(token.pos):
                node = self.or_()
            if self.token.kind != ")":
                opened, found = token.pos + 1, describe(self.token)
                raise self.error(
                    f"expected ')' (to close the '(' in column {opened}) but found {found}", self.token.pos
                )
            self.advance()
            return node
        if kind == "[":
            return self.list_()
        raise self.expect_value_error()

    def call(self, name_token: Token) -> Node:
        name = str(name_token.text)
        spec = FUNCTIONS.get(name)
        if spec is None:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function '{name}' (known: {known})", name_token.pos)
        self.advance()  # "("
        args: list[Node] = []
        with self.nested(name_token.pos):
            if self.token.kind != ")":
                args.append(self.or_())
                while self.token.kind == ",":
                    self.advance()
                    args.append(self.or_())
        if self.token.kind != ")":
            raise self.error(
                f"expected ',' or ')' in the call to {name}() but found {describe(self.token)}", self.token.pos
            )
        self.advance()
        if len(args) != spec.arity:
            plural = "" if spec.arity == 1 else "s"
            raise self.error(f"{name}() takes {spec.arity} argument{plural}, got {len(args)}", name_token.pos)
        return Call(name, tuple(args), name_token.pos)

    def list_(self) -> Node:
        start = self.advance()  # "["
        items: list[Node] = []
        with self.nested(start.pos):
            if self.token.kind != "]":
                items.append(self.operand())
                while self.token.kind == ",":
                    self.advance()
                    items.append(self.operand())
        if self.token.kind != "]":
            raise self.error(f"expected ',' or ']' in the list but found {describe(self.token)}", self.token.pos)
        self.advance()
        return ListNode(tuple(items), start.pos)

    @contextmanager
    def nested(self, pos: int) -> Iterator[None]:
        """One level of nesting; statements nested deeper than any real filter are refused."""
        if self.depth >= _MAX_DEPTH:
            raise self.error(f"the statement is nested more than {_MAX_DEPTH} levels deep", pos)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def parse(source: str) -> Node:
    """The syntax tree of ``source``; raises ``FqlError`` with the position of the problem."""
    return Parser(source).statement()
