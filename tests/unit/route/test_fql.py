"""FQL: Segment's documented examples, null safety, strict types, escaping, globs, precedence, errors.

Examples marked "doc" come from Segment's FQL reference, segmentio/segment-docs
src/api/public-api/fql.md ("Destination Filter Query Language").
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.errors import ConfigError
from eventyard.route import fql
from eventyard.route.fql.lexer import format_path, parse_path

# doc: "Given the following JSON object"
DOC_EVENT: dict[str, Any] = {
    "event": "Button Clicked",
    "type": "track",
    "context": {"library": {"name": "analytics.js", "version": "1.0"}},
    "properties": {"features": ["discounts", "dark-mode"]},
}


def ev(source: str, event: dict[str, Any] | None = None) -> Any:
    return fql.compile(source).evaluate(DOC_EVENT if event is None else event)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # doc: the "Examples" table
        ("event = 'Button Clicked'", True),
        ("event = 'Screen Tapped'", False),
        ("context.path.path = '/login'", False),
        ("type = 'identify' or type = 'track'", True),
        ("event = 'Button Clicked' and type = 'track'", True),
        ("match( context.library.version, '1.*' )", True),
        ("match( context.library.version, '2.*' )", False),
        ("type = 'track' and ( event = 'Click' or match( event, 'Button *' ) )", True),
        ("!contains( context.library.name, 'js' )", False),
        ("'dark-mode' in properties.features", True),
        ("'blink' in properties.features", False),
        # doc: "Subexpressions"
        ("!( type in ['track', 'identify'] )", False),
        (
            "( type = 'track' or type = 'identify' ) and "
            "( properties.enabled or match( traits.email, '*@company.com' ) )",
            False,
        ),
    ],
)
def test_segment_doc_examples(source: str, expected: bool) -> None:
    assert fql.compile(source).matches(DOC_EVENT) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # doc: the glob table under "match( string, pattern )"
        ("match( 'abcd', 'a*d' )", True),
        ("match( '', '*' )", True),
        ("match( 'abc', 'ab' )", False),
        ("match( 'abcd', 'a??d' )", True),
        ("match( 'abcd', '*d' )", True),
        ("match( 'ab*d', 'ab\\*d' )", True),
        ("match( 'abCd', 'ab[cC]d' )", True),
        ("match( 'abcd', 'ab[a-z]d' )", True),
        ("match( 'abcd', 'ab[A-Z]d' )", False),
        # beyond the table
        ("match('a/b/c', 'a*')", True),
        ("match('abc', 'ABC')", False),
        ("match('abcbc', 'a*b*c')", True),
        ("match('abcb', 'a*b*c')", False),
        ("match('a', 'a*a')", False),
        ("match('x]y', 'x\\]y')", True),
        ("match('x-y', 'x[\\-]y')", True),
        ("match('b', '[^a]')", True),
        ("match('a', '[^a]')", False),
        ("match('line\nbreak', 'line*')", True),
        ("match('abc', '?')", False),
    ],
)
def test_glob_matching(source: str, expected: bool) -> None:
    assert ev(source) is expected


def test_glob_from_an_event_field_and_a_malformed_one_is_false() -> None:
    event = {"p": "Order *", "bad": "[a", "name": "Order Completed"}
    assert ev("match(name, p)", event) is True
    assert ev("match(name, bad)", event) is False
    assert ev("match(name, missing)", event) is False


def test_glob_has_no_catastrophic_backtracking() -> None:
    pattern = "*a" * 30 + "*b"
    assert ev(f"match(s, '{pattern}')", {"s": "a" * 5000}) is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # doc: "Functions handle null with sensible defaults"
        ("contains( null, 'x' )", False),
        ("length( null )", 0),
        ("lowercase( null )", None),
        ("typeof( null )", "null"),
        ("match( null, '*' )", False),
        ("length( userId ) > 0", False),
        # missing fields are null
        ("missing = null", True),
        ("missing != null", False),
        ("missing != 'a'", True),
        ("a.b.c.d = null", True),
        ("missing > 1", False),
        ("missing < 1", False),
        ("missing >= 0", False),
        ("missing in ['a']", False),
        ("null in ['a', null]", True),
        ("missing or true", True),
        ("missing and true", False),
        ("!missing", True),
        ("uppercase( missing ) = null", True),
        ("contains( 'abc', null )", False),
        # a path through a non-object is null, never an error
        ("event.name = null", True),
        ("properties.features.name = null", True),
    ],
)
def test_null_safety(source: str, expected: Any) -> None:
    assert ev(source) == expected
    assert type(ev(source)) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("price = 19.99", True),
        ("price = '19.99'", False),  # doc: same type and strictly equal
        ("price != '19.99'", True),  # doc: different types are not equal
        ("count = 3", True),
        ("count = 3.0", True),
        ("flag = true", True),
        ("flag = 1", False),
        ("count = true", False),
        ("text > 5", False),
        ("count > 2 and count >= 3 and count < 4 and count <= 3", True),
        ("flag > 0", False),
        ("tags = ['a', 'b']", True),
        ("tags = ['b', 'a']", False),
        ("nested = nested", True),
        ("ones = [true]", False),
        ("1 in [true]", False),
        ("true in [1]", False),
        ("3 in [1, 2, 3.0]", True),
        ("'3' in [3]", False),
        ("text in tags", False),
        ("'a' in tags", True),
        ("'a' in text", False),
        ("tags in [['a', 'b'], 'x']", True),
        ("count in [count, 1]", True),
    ],
)
def test_strict_types(source: str, expected: bool) -> None:
    event = {
        "price": 19.99,
        "count": 3,
        "flag": True,
        "text": "10",
        "tags": ["a", "b"],
        "ones": [1],
        "nested": {"a": [1, {"b": None}]},
    }
    assert ev(source, event) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("length('abc')", 3),
        ("length('ア')", 3),  # doc: bytes, not characters
        ("length(tags)", 2),
        ("length(obj)", None),
        ("length(obj) > 0", False),
        ("lowercase('AbC')", "abc"),
        ("uppercase('AbC')", "ABC"),
        ("snakecase('test string')", "test_string"),  # doc
        ("kebabcase('test string')", "test-string"),  # doc
        ("titlecase('test string')", "Test String"),  # doc
        ("titlecase('hELLO wORLD')", "HELLO WORLD"),
        ("lowercase(5)", None),
        ("typeof('x')", "string"),
        ("typeof(1.5)", "number"),
        ("typeof(true)", "bool"),
        ("typeof(tags)", "list"),
        ("typeof(obj)", "object"),
        ("typeof(missing)", "null"),
        ("contains('Order Completed', 'Comp')", True),
        ("contains(tags, 'a')", False),
        ("bool('true')", True),
        ("bool('TRUE')", True),
        ("bool('1')", True),
        ("bool('false')", False),
        ("bool('yes please')", False),
        ("bool(0)", False),
        ("bool(2.5)", True),
        ("bool(null)", False),
        ("bool(tags)", True),
        ("bool([])", False),
        ("string(42)", "42"),
        ("string(1.0)", "1"),
        ("string(1.5)", "1.5"),
        ("string(true)", "true"),
        ("string(null)", "null"),
        ("string(tags)", '["a","b"]'),
        ("number('42')", 42),
        ("number(' 1.5 ')", 1.5),
        ("number('1e3')", 1000.0),
        ("number('abc')", None),
        ("number('nan')", None),
        ("number('1e999')", None),
        ("number(true)", None),
        ("number(7)", 7),
        ("number(id) = 123", True),
        ("string(number('12')) = '12'", True),
        ("lowercase(event) = 'order completed'", True),
        ("length(lowercase(event)) = 15", True),
        ("bool(count = 2)", True),
    ],
)
def test_functions(source: str, expected: Any) -> None:
    event = {"tags": ["a", "b"], "obj": {"a": 1}, "id": "123", "event": "Order Completed", "count": 2}
    assert ev(source, event) == expected
    assert type(ev(source, event)) is type(expected)


@pytest.mark.parametrize(
    ("source", "event", "expected"),
    [
        # doc: "Escaping Field Paths": properties.product\ 1.price
        ("properties.product\\ 1.price = '19.99'", {"properties": {"product 1": {"price": "19.99"}}}, True),
        ("properties.product\\.id = 7", {"properties": {"product.id": 7, "product": {"id": 8}}}, True),
        ("properties.product.id = 8", {"properties": {"product.id": 7, "product": {"id": 8}}}, True),
        ("properties.my\\ field = 'x'", {"properties": {"my field": "x"}}, True),
        ("properties.a-b_c9 = 1", {"properties": {"a-b_c9": 1}}, True),
        ("\\and = 1", {"and": 1}, True),
        ("\\$ref = 'x'", {"$ref": "x"}, True),
        ("properties.\\@type = 'x'", {"properties": {"@type": "x"}}, True),
        ("properties.0 = 'x'", {"properties": {"0": "x"}}, True),
        ("properties.items.1.sku = 'b'", {"properties": {"items": [{"sku": "a"}, {"sku": "b"}]}}, True),
        ("properties.items.9.sku = null", {"properties": {"items": [{"sku": "a"}]}}, True),
        ("prénom = 'Zoé'", {"prénom": "Zoé"}, True),
    ],
)
def test_field_paths_and_escaping(source: str, event: dict[str, Any], expected: bool) -> None:
    assert fql.compile(source).matches(event) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'it\\'s' = \"it's\"", True),
        ('"say \\"hi\\"" = \'say "hi"\'', True),
        ("'a\\nb' = lowercase('A\nB')", True),
        ("'\\u00e9' = 'é'", True),
        ("'back\\\\slash' = 'back\\slash'", True),
        ("-1.5 < 0 and +2 > 1 and 1e2 = 100", True),
    ],
)
def test_literals(source: str, expected: bool) -> None:
    assert ev(source) is expected


def test_precedence() -> None:
    event = {"a": True, "b": False, "c": False, "type": "track"}
    # 'and' binds tighter than 'or'
    assert ev("a or b and c", event) is True
    assert ev("(a or b) and c", event) is False
    assert ev("c and b or a", event) is True
    # '!' applies to the comparison that follows it, and binds tighter than 'and'/'or'
    assert ev("!type = 'track'", event) is False
    assert ev("!type = 'identify'", event) is True
    assert ev("!b and !c", event) is True
    assert ev("!a or a", event) is True
    assert ev("!!a", event) is True
    assert ev("!(a and b)", event) is True
    # 'and'/'or' only count values that are exactly true
    assert ev("'yes' or 1", event) is False
    assert ev("'dark-mode' in properties.features and type = 'track'") is True


def test_matches_needs_exactly_true_and_evaluate_returns_the_value() -> None:
    expr = fql.compile("lowercase(event)")
    assert expr.evaluate(DOC_EVENT) == "button clicked"
    assert expr.matches(DOC_EVENT) is False
    assert fql.compile("properties.enabled").matches({"properties": {"enabled": True}}) is True
    assert fql.compile("properties.enabled").matches({"properties": {"enabled": "true"}}) is False
    listed = fql.compile("['a', lowercase('B')]")
    listed.evaluate({}).append("changed by the caller")
    assert listed.evaluate({}) == ["a", "b"]


def test_fields_lists_the_paths_read() -> None:
    expr = fql.compile("type = 'track' and (contains(properties.product\\ 1.name, 'x') or context.page.url in [a.b])")
    assert expr.fields == {"type", "properties.product\\ 1.name", "context.page.url", "a.b"}
    assert ("properties", "product 1", "name") in expr.paths
    assert fql.compile("true").fields == frozenset()


@pytest.mark.parametrize(
    ("segments", "text"),
    [
        (("properties", "email"), "properties.email"),
        (("properties", "product 1", "price"), "properties.product\\ 1.price"),
        (("properties", "product.id"), "properties.product\\.id"),
        (("and",), "\\and"),
        (("1st",), "\\1st"),
        (("a", "1st"), "a.1st"),
    ],
)
def test_format_and_parse_path(segments: tuple[str, ...], text: str) -> None:
    assert format_path(segments) == text
    assert parse_path(text) == segments


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("event = ", "expected a value after '='", 8),
        ("properties.price > ", "expected a value after '>'", 19),
        ("event = )", "expected a value after '=' but found ')'", 9),
        ("", "the statement is empty", 1),
        ("   ", "the statement is empty", 1),
        (")", "expected a field, a value or '(' but found ')'", 1),
        ("event = 'x", "unterminated string", 9),
        ('userId = oops"', "unterminated string", 14),  # doc: "Error Handling" example
        ("a = b = c", "comparisons do not chain", 7),
        ("a = 1 b = 2", "missing 'and' or 'or'", 7),
        ("a = 1 AND b = 2", "did you mean 'and'", 7),
        ("(a = 1", "expected ')' (to close the '(' in column 1) but found the end of the statement", 7),
        ("contains(a)", "contains() takes 2 arguments, got 1", 1),
        ("length(a, b)", "length() takes 1 argument, got 2", 1),
        ("frobnicate(a)", "unknown function 'frobnicate'", 1),
        ("contains(a b)", "expected ',' or ')' in the call to contains()", 12),
        ("a in ['x' 'y']", "expected ',' or ']' in the list", 11),
        ("a in ['x',]", "expected a value after ','", 11),
        ("properties.", "expected a field name after '.'", 12),
        ("properties..x", "expected a field name after '.'", 12),
        ("a == 1", "use '=' to compare", 3),
        ("a = 1 && b = 2", "use 'and'", 7),
        ("a = 1 || b = 2", "use 'or'", 7),
        ("a = $", "unexpected character '$'", 5),
        ("a = 5.", "expected a digit after the decimal point", 7),
        ("a = 5x", "unexpected 'x' after the number", 6),
        ("a = 1e", "expected digits in the exponent", 7),
        ("a = '\\u12'", "expected four hex digits", 6),
        ("a\\", "expected a character after '\\'", 2),
        ("a > 'x'", "'>' compares numbers, but this is a string", 5),
        ("a <= null", "'<=' compares numbers, but this is a null", 6),
        ("a in 'abc'", "'in' needs a list on its right, but this is a string", 6),
        ("match(a, 5)", "match() needs a string pattern, but this is a number", 10),
        ("match(a, 'ab[z-a]')", "bad glob pattern: the range z-a is reversed", 16),
        ("match(a, 'ab[')", "bad glob pattern: '[' is never closed", 13),
        ("match(a, 'ab\\\\')", "bad glob pattern: the pattern ends with a lone", 10),
        ("!", "expected a value after '!'", 2),
        ("a = " + "9" * 400, "number is too long", 5),
        ("a = 1e400", "number is out of range", 5),
        ("(" * 70 + "a" + ")" * 70, "nested more than 64 levels deep", 65),
    ],
)
def test_errors_say_what_and_where(source: str, message: str, column: int) -> None:
    with pytest.raises(fql.FqlError) as info:
        fql.compile(source)
    err = info.value
    assert message in err.message
    assert err.column == column, str(err)
    assert isinstance(err, ConfigError)
    assert fql.validate(source) is not None


def test_error_text_has_the_line_and_a_caret_under_the_column() -> None:
    err = fql.validate("event = ")
    assert err is not None
    assert str(err) == "expected a value after '=' at column 8:\n  event = \n         ^"
    multi = fql.validate("type = 'track'\nand event = ")
    assert multi is not None
    assert (multi.line, multi.column) == (2, 12)
    assert str(multi).startswith("expected a value after '=' at line 2, column 12:\n  and event = \n")


def test_validate_and_compile_cache() -> None:
    assert fql.validate("type = 'track'") is None
    assert fql.compile("type = 'track'") is fql.compile("type = 'track'")
    with pytest.raises(fql.FqlError, match="is a string"):
        fql.compile(["type"])  # type: ignore[arg-type]


def test_keywords_are_lowercase_and_prefixes_are_fields() -> None:
    event = {"orange": 1, "android": True, "nullable": None, "inside": 2, "truely": True}
    assert ev("orange = 1 and android and nullable = null and inside = 2 and truely", event) is True


# -- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(["type", "event", "userId", "properties", "context", "a", "b", "x"])
events = st.dictionaries(field_names | st.text(max_size=6), json_values, max_size=6).map(
    lambda d: {**d, "properties": d.get("properties", {"a": 1, "b": "x", "c": [1, "x", None]})}
)
TOKENS = [
    "a", "b", "properties", ".", "properties.a", "context.page", "userId", "(", ")", "[", "]", ",", "=", "!=",
    ">", ">=", "<", "<=", "!", "and", "or", "in", "true", "false", "null", "'x'", '"y"', "1", "-2.5", "1e3",
    "contains", "length", "match", "typeof", "lowercase", "number", "string", "bool", "'*'", "'[a-z]*'", " ",
    "\\", "'", '"', "*", "\\ ", "$", "==", "\n",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
def test_compile_raises_only_fql_errors(source: str) -> None:
    try:
        fql.compile(source)
    except fql.FqlError as exc:
        assert 0 <= exc.position <= len(source)
        assert str(exc)


literals = st.sampled_from(["'x'", "'*'", "'a*'", "1", "2.5", "true", "false", "null", "['x', 1]", "[]"])
paths = st.sampled_from(
    ["a", "b", "type", "properties.a", "properties.b", "properties.c", "context.x.y", "properties.c.0"]
)
operands = literals | paths


def _call(name: str, *args: str) -> str:
    return f"{name}({', '.join(args)})"


def statements() -> st.SearchStrategy[str]:
    unary = st.sampled_from(["length", "lowercase", "uppercase", "typeof", "bool", "string", "number", "titlecase"])
    values = st.recursive(
        operands,
        lambda inner: (
            st.builds(_call, unary, inner)
            | st.builds(lambda a, b: _call("contains", a, b), inner, inner)
            | st.builds(lambda a, b: _call("match", a, b), inner, paths | st.sampled_from(["'*'", "'a?'", "'[^x]*'"]))
        ),
        max_leaves=4,
    )
    comparisons = st.builds(
        lambda a, op, b: f"{a} {op} {b}", values, st.sampled_from(["=", "!=", ">", "<", ">=", "<="]), values
    ) | st.builds(lambda a, b: f"{a} in {b}", values, paths | st.just("['x', 1, null]"))
    return st.recursive(
        comparisons | values,
        lambda inner: (
            st.builds(lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["and", "or"]), inner)
            | inner.map(lambda s: f"!({s})")
        ),
        max_leaves=6,
    )


@settings(max_examples=300, deadline=None)
@given(statements(), st.lists(events, min_size=1, max_size=3))
def test_compiled_statements_never_raise_on_json_events(source: str, sample: list[dict[str, Any]]) -> None:
    error = fql.validate(source)
    if error is not None:  # e.g. a literal string compared with '>': refused when compiled
        return
    expr = fql.compile(source)
    for event in sample:
        assert isinstance(expr.matches(event), bool)
        expr.evaluate(event)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4))
def test_format_path_round_trips(segments: list[str]) -> None:
    text = format_path(tuple(segments))
    assert parse_path(text) == tuple(segments)
    assert fql.compile(f"{text} = 1").matches(_nest(segments, 1))


def _nest(segments: list[str], value: Any) -> dict[str, Any]:
    for seg in reversed(segments):
        value = {seg: value}
    return value  # type: ignore[no-any-return]
