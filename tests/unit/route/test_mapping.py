"""Mappings (Segment Actions' mapping kit) and actions (trigger + mapping).

Cases marked "README" come from the examples in the mapping kit's README
(segmentio/action-destinations, packages/core/src/mapping-kit/README.md); cases marked
"kit test" from its test suite (packages/core/src/mapping-kit/__tests__/index.iso.test.ts).
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventyard.errors import ConfigError
from eventyard.route.mapping import (
    DIRECTIVES,
    ActionSet,
    ActionSpec,
    CompiledAction,
    MappingError,
    compile_action,
    compile_action_set,
    compile_actions,
    compile_mapping,
    select_action,
)
from eventyard.testing import events


def run(mapping: dict[str, Any], event: dict[str, Any] | None = None) -> dict[str, Any]:
    return compile_mapping(mapping).apply(event if event is not None else {})


def value(directive: dict[str, Any], event: dict[str, Any] | None = None) -> Any:
    """What one directive resolves to (absent when the key is left out)."""
    return run({"v": directive}, event).get("v", "<absent>")


def error(mapping: Any) -> MappingError:
    with pytest.raises(MappingError) as caught:
        compile_mapping(mapping)
    return caught.value


# -- raw values, nesting, missing values ----------------------------------------------------------


def test_readme_introduction() -> None:
    # README, introduction
    mapping = {
        "name": "Mr. Rogers",
        "neighborhood": {"@path": "$.properties.neighborhood"},
        "greeting": {"@template": "Won't you be my {{properties.noun}}?"},
    }
    event = {
        "type": "track",
        "event": "Sweater On",
        "context": {"library": {"name": "analytics.js", "version": "2.11.1"}},
        "properties": {"neighborhood": "Latrobe", "noun": "neighbor", "sweaterColor": "red"},
    }
    assert run(mapping, event) == {
        "name": "Mr. Rogers",
        "neighborhood": "Latrobe",
        "greeting": "Won't you be my neighbor?",
    }


def test_readme_mixing_raw_values_and_directives() -> None:
    # README, "Mixing raw values and directives"
    traits = {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium", "logins": 5}
    mapping = {"action": "create", "userId": {"@path": "$.traits.email"}, "userProperties": {"@path": "$.traits"}}
    assert run(mapping, {"traits": traits}) == {
        "action": "create",
        "userId": "peter@example.com",
        "userProperties": traits,
    }


def test_readme_missing_values_are_removed_and_null_is_kept() -> None:
    # README, "Removing values from object"
    mapping = {"foo": {"@path": "$.a"}, "bar": {"@path": "$.b"}, "baz": None}
    assert run(mapping, {"a": 1}) == {"foo": 1, "baz": None}


def test_nested_objects_and_lists_are_mapped_recursively() -> None:
    mapping = {
        "user": {"id": {"@path": "$.userId"}, "email": {"@path": "$.traits.email"}, "tags": ["a", {"@path": "$.x"}]},
        "empty": {},
        "deep": {"a": {"b": {"c": {"@path": "$.missing"}}}},
    }
    # A missing item in a list keeps its place as null (JSON.stringify of the kit's undefined).
    assert run(mapping, {"userId": "u1", "x": [1]}) == {
        "user": {"id": "u1", "tags": ["a", [1]]},
        "empty": {},
        "deep": {"a": {"b": {}}},
    }
    assert run({"list": [{"@path": "$.a"}, {"@path": "$.b"}]}, {"a": 1}) == {"list": [1, None]}


def test_raw_values_are_fresh_for_every_event() -> None:
    mapping = compile_mapping({"obj": {"k": "v"}, "list": [1, 2], "n": 1.5, "t": True, "nil": None})
    first = mapping.apply({})
    first["obj"]["k"] = "changed"
    first["list"].append(3)
    assert mapping.apply({}) == {"obj": {"k": "v"}, "list": [1, 2], "n": 1.5, "t": True, "nil": None}


def test_apply_does_not_change_the_event() -> None:
    event = events.track()
    before = copy.deepcopy(event)
    mapping = compile_mapping(
        {
            "all": {"@excludeWhenNull": {"@path": "$"}},
            "flat": {"@flatten": {"value": {"@path": "$.properties"}, "separator": "_"}},
            "merged": {"@merge": {"objects": [{"@path": "$.context"}, {"x": 1}]}},
        }
    )
    mapping.apply(event)
    assert event == before


def test_top_level_directive() -> None:
    assert run({"@path": "$.properties"}, {"properties": {"a": 1}}) == {"a": 1}
    # The payload is always an object: a top-level directive giving anything else gives {}.
    assert run({"@path": "$.properties"}, {}) == {}
    assert run({"@path": "$.list"}, {"list": [1]}) == {}


def test_empty_mapping() -> None:
    # kit test "no-op"
    assert run({}, {"cool": False}) == {}
    assert run({"cool": True}) == {"cool": True}


# -- @path ---------------------------------------------------------------------------------------

PATH_INPUT = {"foo": {"bar": 42, "baz": [{"num": 1}, {"num": 2}]}, "hello": "world"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # README, @path
        ("$.hello", "world"),
        ("$.foo.bar", 42),
        ("$.foo.baz[0].num", 1),
        # "Like JSONPath, you can include or omit the leading $."
        ("foo.bar", 42),
        ("$.foo.baz.1.num", 2),
        ("$.foo['bar']", 42),
        ('$["foo"].baz[1]', {"num": 2}),
        ("$.foo.baz[5].num", "<absent>"),
        ("$.foo.bar.deeper", "<absent>"),  # kit test "invalid nested value type"
        ("$.oops", "<absent>"),  # kit test "invalid path"
        ("$.hello.0", "<absent>"),  # strings are not indexed
    ],
)
def test_path(path: str, expected: Any) -> None:
    assert value({"@path": path}, PATH_INPUT) == expected


@pytest.mark.parametrize("root", ["", "$", "$."])
def test_path_to_the_root(root: str) -> None:
    # kit test "root path"
    assert run({"@path": root}, {"foo": "bar"}) == {"foo": "bar"}


def test_path_keys_with_spaces_dots_and_brackets() -> None:
    # kit test "spaced nested value"
    event = {"integrations": {"Actions Amplitude": {"session_id": "bar"}}, "a.b": 1, "c[d]": 2}
    assert value({"@path": "$.integrations.Actions Amplitude.session_id"}, event) == "bar"
    assert value({"@path": '$["a.b"]'}, event) == 1
    assert value({"@path": "$.c[d]"}, event) == 2  # a bracket that is no index belongs to the key


def test_path_to_null_is_null_and_under_null_is_missing() -> None:
    event = {"context": {"page": None}}
    assert run({"page": {"@path": "$.context.page"}, "url": {"@path": "$.context.page.url"}}, event) == {"page": None}


def test_path_computed_by_a_directive() -> None:
    # kit test "nested directive"
    assert value({"@path": {"@path": "$.foo"}}, {"foo": "bar", "bar": "baz"}) == "baz"
    assert value({"@path": {"@path": "$.foo"}}, {"foo": 1}) == "<absent>"
    assert value({"@path": {"@path": "$.foo"}}, {"foo": "a..b"}) == "<absent>"


# -- @template -----------------------------------------------------------------------------------

TEMPLATE_INPUT = {"traits": {"name": "Mr. Rogers"}, "userId": "abc123"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # README, @template
        ("Hello, {{traits.name}}!", "Hello, Mr. Rogers!"),
        ("Hello, {{traits.fullName}}!", "Hello, !"),
        ("{{traits.name}} ({{userId}})", "Mr. Rogers (abc123)"),
        # kit tests: spaces inside braces, no escaping with three braces either
        ("{{ traits.name }}/{{{userId}}}", "Mr. Rogers/abc123"),
        ("{{$.userId}}", "abc123"),
        ("no placeholders", "no placeholders"),
        ("{{unclosed", "{{unclosed"),
    ],
)
def test_template(template: str, expected: str) -> None:
    assert value({"@template": template}, TEMPLATE_INPUT) == expected


def test_template_formats_values_like_javascript() -> None:
    event = {"i": 3, "f": 2.5, "whole": 2.0, "t": True, "n": None, "o": {"a": [1, "x"]}, "s": "ü"}
    template = "{{i}} {{f}} {{whole}} {{t}} [{{n}}] {{o}} {{s}}"
    assert value({"@template": template}, event) == '3 2.5 2 true [] {"a":[1,"x"]} ü'


def test_template_does_not_expand_placeholders_brought_in_by_values() -> None:
    assert value({"@template": "{{a}}-{{b}}"}, {"a": "{{b}}", "b": "x"}) == "{{b}}-x"


def test_template_computed_by_a_directive() -> None:
    event = {"t": "Hi {{name}}", "name": "Ann"}
    assert value({"@template": {"@path": "$.t"}}, event) == "Hi Ann"
    assert value({"@template": {"@path": "$.nope"}}, event) == "<absent>"


# -- @literal ------------------------------------------------------------------------------------


def test_literal() -> None:
    # README, @literal; kit test "simple"
    assert value({"@literal": True}) is True
    assert value({"@literal": False}) is False
    assert value({"@literal": ""}) == ""
    # kit test "nested directives": directives inside a literal still resolve
    nested = {"@literal": {"a": {"@path": "$.a"}, "b": {"@path": "$.b"}}}
    assert value(nested, {"a": "some value"}) == {"a": "some value"}


# -- @if -----------------------------------------------------------------------------------------

IF_INPUT = {"a": 1, "b": True, "c": False, "d": None, "e": "", "z": 0}


@pytest.mark.parametrize(
    ("condition", "path", "expected"),
    [
        # kit test "exists": only missing and null fail
        ("exists", "$.a", "yep"),
        ("exists", "$.d", "nope"),
        ("exists", "$.x", "nope"),
        ("exists", "$.e", "yep"),
        ("exists", "$.c", "yep"),
        # kit test "blank": missing, null and "" are blank
        ("blank", "$.a", "yep"),
        ("blank", "$.d", "nope"),
        ("blank", "$.x", "nope"),
        ("blank", "$.e", "nope"),
        # 0 and false are values here (the kit's JavaScript loose equality calls them blank)
        ("blank", "$.z", "yep"),
        ("blank", "$.c", "yep"),
    ],
)
def test_if(condition: str, path: str, expected: str) -> None:
    directive = {"@if": {condition: {"@path": path}, "then": "yep", "else": "nope"}}
    assert value(directive, IF_INPUT) == expected


def test_if_without_the_chosen_branch_omits_the_key() -> None:
    # README, @if: "the field will not appear in the resolved output"
    assert run({"foo-exists": {"@if": {"exists": {"@path": "$.foo"}, "then": True}}}, {"a": "cool"}) == {}
    assert run({"a": {"@if": {"exists": {"@path": "$.oops"}, "then": {"@path": "$.a"}}}}, {"a": "cool"}) == {}
    assert run({"a": {"@if": {"exists": {"@path": "$.a"}, "else": 1}}}, {"a": "cool"}) == {}


def test_if_else_with_a_falsy_value_is_used() -> None:
    directive = {"@if": {"exists": {"@path": "$.x"}, "then": 1, "else": False}}
    assert value(directive) is False


# -- @case ---------------------------------------------------------------------------------------


def test_case() -> None:
    # README, @case (the README's result has a typo; the kit's tests show the plain lowercase)
    event = {"properties": {"message": "THIS STRING IS IN ALL CAPS"}}
    assert value({"@case": {"operator": "lower", "value": {"@path": "$.properties.message"}}}, event) == (
        "this string is in all caps"
    )
    assert value({"@case": {"operator": "upper", "value": "make me upper case"}}) == "MAKE ME UPPER CASE"


@pytest.mark.parametrize("found", [1, None, False, {"key1": "with values", "key2": ["hi", True, None]}])
def test_case_leaves_non_strings_unchanged(found: Any) -> None:
    # kit test "handle non-string-input correctly"
    assert value({"@case": {"operator": "lower", "value": {"@path": "$.v"}}}, {"v": found}) == found


# -- @replace ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "text", "expected"),
    [
        # README, @replace
        ({"pattern": "-", "replacement": ""}, "cool-story", "coolstory"),
        ({"pattern": "-", "replacement": "nice"}, "cool-story", "coolnicestory"),
        ({"pattern": "WW", "replacement": "oo", "ignorecase": False}, "cWWl-story-ww", "cool-story-ww"),
        ({"pattern": "-", "replacement": "@", "global": False}, "just-the-first", "just@the-first"),
        (
            {"pattern": "-", "replacement": " ", "pattern2": "great", "replacement2": "awesome"},
            "something-great!",
            "something awesome!",
        ),
        # kit tests
        ({"pattern": "AaB", "replacement": "nice", "ignorecase": True}, "aab-----AaB---aab", "nice-----nice---nice"),
        ({"pattern": "+", "replacement": "_", "global": False}, "many+different+things", "many_different+things"),
        ({"pattern": "many+"}, "many+different+things", "different+things"),
        ({"pattern": "_", "replacement": "rrrrr"}, "", ""),
        ({"pattern": "true", "replacement": "granted"}, True, "granted"),
        ({"pattern": "1", "replacement": "granted"}, 1, "granted"),
        ({"pattern": "true", "replacement": "granted", "pattern2": "false", "replacement2": "denied"}, False, "denied"),
        # patterns and replacements are literal text, also without case
        ({"pattern": ".", "replacement": "\\1$&"}, "a.b", "a\\1$&b"),
        ({"pattern": "X.", "replacement": "\\g<0>", "ignorecase": True}, "ax.bx.", "a\\g<0>b\\g<0>"),
        ({"pattern": "-", "replacement": None}, "a-b", "ab"),
        ({"pattern": "-", "pattern2": "b"}, "a-b", "a"),
    ],
)
def test_replace(options: dict[str, Any], text: Any, expected: str) -> None:
    assert value({"@replace": {**options, "value": {"@path": "$.a"}}}, {"a": text}) == expected


def test_replace_leaves_missing_null_and_containers_alone() -> None:
    directive = {"@replace": {"pattern": "-", "replacement": "", "value": {"@path": "$.a"}}}
    assert value(directive, {}) == "<absent>"
    assert value(directive, {"a": None}) is None
    assert value(directive, {"a": ["a-b"]}) == ["a-b"]


# -- @json ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        # README, @json; kit tests "encode*"
        ({"bar": "baz"}, '{"bar":"baz"}'),
        ("bar", '"bar"'),
        (["bar", "baz"], '["bar","baz"]'),
        (None, "null"),
        ({"ü": 1.5}, '{"ü":1.5}'),
    ],
)
def test_json_encode(found: Any, expected: str) -> None:
    assert value({"@json": {"mode": "encode", "value": {"@path": "$.foo"}}}, {"foo": found}) == expected


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        # README, @json; kit tests "decode*"
        ('["bar","baz"]', ["bar", "baz"]),
        ('"bar"', "bar"),
        ('{"bar":"baz"}', {"bar": "baz"}),
        ("Hello World", "Hello World"),  # not JSON: unchanged
        (5, 5),
    ],
)
def test_json_decode(found: Any, expected: Any) -> None:
    assert value({"@json": {"mode": "decode", "value": {"@path": "$.foo"}}}, {"foo": found}) == expected


def test_json_of_a_missing_value_is_missing() -> None:
    # kit test "invalid value"
    assert run({"neat": {"@json": {"mode": "encode", "value": {"@path": "$.bad"}}}}, {"foo": 1}) == {}


# -- @flatten ------------------------------------------------------------------------------------


def test_flatten() -> None:
    # README, @flatten
    event = {"foo": {"bar": "baz", "aces": {"a": 1, "b": 2}}}
    directive = {"@flatten": {"value": {"@path": "$.foo"}, "separator": "."}}
    assert value(directive, event) == {"bar": "baz", "aces.a": 1, "aces.b": 2}


def test_flatten_lists() -> None:
    # kit test "array value first"; README, omitArrays
    directive = {"@flatten": {"value": {"@path": "$.foo"}, "separator": "."}}
    assert value(directive, {"foo": [{"fazz": "bar", "fizz": "baz"}]}) == {"0.fazz": "bar", "0.fizz": "baz"}
    keep = {"@flatten": {"value": {"@path": "$.foo"}, "separator": ".", "omitArrays": True}}
    assert value(keep, {"foo": {"bar": "baz", "tags": [1, 2]}}) == {"bar": "baz", "tags": [1, 2]}


def test_flatten_other_values_pass_unchanged() -> None:
    directive = {"@flatten": {"value": {"@path": "$.foo"}, "separator": "_"}}
    assert value(directive, {"foo": "text"}) == "text"
    assert value(directive, {}) == "<absent>"
    assert value(directive, {"foo": {"a": {}, "b": {"c": None}}}) == {"b_c": None}


# -- @merge --------------------------------------------------------------------------------------

MERGE_INPUT = {
    "traits": {"name": "Mr. Rogers", "greeting": "Neighbor", "neighborhood": "Latrobe"},
    "properties": {"neighborhood": "Make Believe"},
}


def test_merge() -> None:
    # README, @merge
    directive = {"@merge": {"objects": [{"@path": "traits"}, {"@path": "properties"}], "direction": "right"}}
    assert value(directive, MERGE_INPUT) == {
        "name": "Mr. Rogers",
        "greeting": "Neighbor",
        "neighborhood": "Make Believe",
    }
    directive = {"@merge": {"objects": [{"@path": "properties"}, {"@path": "traits"}], "direction": "right"}}
    assert value(directive, MERGE_INPUT) == {"name": "Mr. Rogers", "greeting": "Neighbor", "neighborhood": "Latrobe"}


def test_merge_with_defaults() -> None:
    # README, @merge: default values
    directive = {
        "@merge": {
            "objects": [{"name": "Missing name", "neighborhood": "Missing neighborhood"}, {"@path": "traits"}],
            "direction": "right",
        }
    }
    assert value(directive, {"traits": {"name": "Mr. Rogers"}}) == {
        "name": "Mr. Rogers",
        "neighborhood": "Missing neighborhood",
    }


def test_merge_directions() -> None:
    # kit tests "nested directive with overwrite ... direction"
    objects = [{"cool": True, "hey": "there"}, {"@path": "foo"}]
    event = {"foo": {"bar": "baz", "hey": "you"}}
    assert value({"@merge": {"objects": objects, "direction": "right"}}, event) == {
        "cool": True,
        "hey": "you",
        "bar": "baz",
    }
    assert value({"@merge": {"objects": objects, "direction": "left"}}, event) == {
        "cool": True,
        "hey": "there",
        "bar": "baz",
    }
    assert value({"@merge": {"objects": objects}}, event)["hey"] == "you"  # right is the default
    assert value({"@merge": {"objects": []}}) == {}


def test_merge_skips_values_that_are_not_objects() -> None:
    directive = {"@merge": {"objects": [{"@path": "$.a"}, {"@path": "$.b"}, {"@path": "$.c"}]}}
    assert value(directive, {"a": "text", "b": [1], "c": {"k": 1}}) == {"k": 1}


# -- @arrayPath ----------------------------------------------------------------------------------


def test_array_path() -> None:
    # README, @arrayPath
    event = {"properties": {"products": [{"productId": 1}, {"productId": 2}]}}
    assert value({"@arrayPath": ["$.properties.products"]}, event) == [{"productId": 1}, {"productId": 2}]
    shaped = {"@arrayPath": ["$.properties.products", {"some_other_key": {"@path": "$.productId"}}]}
    assert value(shaped, event) == [{"some_other_key": 1}, {"some_other_key": 2}]


def test_array_path_over_the_products_of_order_completed() -> None:
    event = events.track(
        "Order Completed",
        {
            "order_id": "ord-7",
            "currency": "EUR",
            "products": [
                {"product_id": "p1", "sku": "SKU-1", "name": "Mug", "price": 9.5, "quantity": 2},
                {"product_id": "p2", "sku": "SKU-2", "name": "Tee", "price": 20, "quantity": 1, "coupon": "X"},
            ],
        },
    )
    mapping = {
        "order": {"@path": "$.properties.order_id"},
        "lines": {
            "@arrayPath": [
                "$.properties.products",
                {
                    "id": {"@path": "$.product_id"},
                    "title": {"@case": {"operator": "upper", "value": {"@path": "$.name"}}},
                    "unit_price": {"@path": "$.price"},
                    "qty": {"@path": "$.quantity"},
                    "coupon": {"@path": "$.coupon"},
                    "label": {"@template": "{{sku}} x{{quantity}}"},
                },
            ]
        },
    }
    assert run(mapping, event) == {
        "order": "ord-7",
        "lines": [
            {"id": "p1", "title": "MUG", "unit_price": 9.5, "qty": 2, "label": "SKU-1 x2"},
            {"id": "p2", "title": "TEE", "unit_price": 20, "qty": 1, "coupon": "X", "label": "SKU-2 x1"},
        ],
    }


def test_array_path_shapes() -> None:
    shape = {"product_id": {"@path": "$.productId"}, "monies": {"@path": "$.price"}}
    # kit test "singular objects": one object is a list of one
    assert value({"@arrayPath": ["$.properties", shape]}, {"properties": {"productId": "123", "price": 0.5}}) == [
        {"product_id": "123", "monies": 0.5}
    ]
    # kit test "not an array"
    assert value({"@arrayPath": ["$.products", shape]}, {"products": {"notAnArray": True}}) == [{}]
    # kit test "relative object shape with directive"
    source = {"@if": {"exists": {"@path": "$.products"}, "then": {"@path": "$.products"}, "else": []}}
    products = [{"productId": "1", "price": 1}]
    assert value({"@arrayPath": [source, shape]}, {"products": products}) == [{"product_id": "1", "monies": 1}]
    assert value({"@arrayPath": [source, shape]}, {}) == []
    # scalars and missing values pass through; "$" is the item itself; a directive as the shape
    assert value({"@arrayPath": ["$.n", shape]}, {"n": 5}) == 5
    assert value({"@arrayPath": ["$.n", shape]}, {}) == "<absent>"
    assert value({"@arrayPath": ["$.tags", {"tag": {"@path": "$"}}]}, {"tags": ["a", "b"]}) == [
        {"tag": "a"},
        {"tag": "b"},
    ]
    assert value({"@arrayPath": ["$.p", {"@path": "$.id"}]}, {"p": [{"id": 1}, {}]}) == [1, None]


def test_array_path_nested() -> None:
    event = {"orders": [{"id": "o1", "items": [{"sku": "a"}, {"sku": "b"}]}, {"id": "o2", "items": []}]}
    mapping = {
        "@arrayPath": ["$.orders", {"id": {"@path": "$.id"}, "skus": {"@arrayPath": ["$.items", {"@path": "$.sku"}]}}]
    }
    assert value(mapping, event) == [{"id": "o1", "skus": ["a", "b"]}, {"id": "o2", "skus": []}]


# -- @transform ----------------------------------------------------------------------------------


def test_transform() -> None:
    # README, @transform
    directive = {"@transform": {"apply": {"foo": {"@path": "$.a"}}, "mapping": {"newValue": {"@path": "$.foo"}}}}
    assert value(directive, {"a": 1, "b": 2}) == {"newValue": 1}


def test_transform_composed_with_flatten() -> None:
    # kit test "composed with other directives"
    directive = {
        "@transform": {
            "apply": {"properties": {"@flatten": {"value": {"@path": "$.properties"}, "separator": "_"}}},
            "mapping": {"properties": {"@path": "$.properties"}, "topLevel": {"@path": "$.properties.nested_a"}},
        }
    }
    event = {"properties": {"test": "value", "nested": {"a": "special", "b": 2}}, "otherStuff": "foo"}
    assert value(directive, event) == {
        "properties": {"test": "value", "nested_a": "special", "nested_b": 2},
        "topLevel": "special",
    }


# -- @excludeWhenNull ----------------------------------------------------------------------------


def test_exclude_when_null() -> None:
    # README, @excludeWhenNull
    mapping = {"a": {"@excludeWhenNull": {"@path": "$.a"}}, "b": {"@excludeWhenNull": {"@path": "$.b"}}}
    assert run(mapping, {"a": None, "b": "hello"}) == {"b": "hello"}


def test_exclude_when_null_cleans_nested_objects() -> None:
    # kit test "exclude individual deeply nested null fields in object when applied at object level"
    event = {"foo": {"bar": None, "aces": {"a": 1, "b": 2, "c": None, "d": {"a": None, "b": None}}, "l": [None]}}
    assert value({"@excludeWhenNull": {"@path": "$.foo"}}, event) == {"aces": {"a": 1, "b": 2, "d": {}}, "l": [None]}


def test_exclude_when_null_composed() -> None:
    # kit test "composed with other directives" (replace of null: see test_replace_leaves_...)
    mapping = {
        "pathNull": {"@excludeWhenNull": {"@path": "$.foo.bar"}},
        "templateEmpty": {"@excludeWhenNull": {"@template": "{{foo.bar}}"}},
        "literalNull": {"@excludeWhenNull": {"@literal": None}},
        "ifNull": {"@excludeWhenNull": {"@if": {"exists": {"@path": "$.foo.foobar"}, "then": 1, "else": None}}},
        "caseNull": {"@excludeWhenNull": {"@case": {"operator": "upper", "value": {"@path": "$.foo.bar"}}}},
        "jsonNull": {"@excludeWhenNull": {"@json": {"mode": "decode", "value": {"@path": "$.foo.bar"}}}},
        "jsonNullEncode": {"@excludeWhenNull": {"@json": {"mode": "encode", "value": {"@path": "$.foo.bar"}}}},
        "transformValue": {
            "@excludeWhenNull": {
                "@transform": {
                    "apply": {"properties": {"@path": "$.foo"}},
                    "mapping": {"properties": {"@path": "$.properties"}},
                }
            }
        },
    }
    assert run(mapping, {"foo": {"bar": None, "aces": {"a": 1, "b": 2}}}) == {
        "templateEmpty": "",
        "jsonNullEncode": "null",
        "transformValue": {"properties": {"aces": {"a": 1, "b": 2}}},
    }


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "path", "message"),
    [
        ({"user": {"email": {"@paht": "$.x"}}}, "$.user.email", "unknown directive @paht (did you mean @path?)"),
        ({"a": {"@arraypath": ["$.x"]}}, "$.a", "did you mean @arrayPath?"),
        ({"a": {"@nothing": 1}}, "$.a", "unknown directive @nothing"),
        ({"a": {"@liquid": "{{ x }}"}}, "$.a", "@liquid is not supported by eventyard"),
        ({"a": {"@path": "$.x", "@template": "y"}}, "$.a", "exactly one @-key, this one has 2: @path, @template"),
        ({"foo": "bar", "@path": "$.properties.biz"}, "$", "cannot share an object with other keys ('foo')"),
        ({"a": [1, {"@path": 5}]}, "$.a[1].@path", "@path takes a path"),
        ({"a": {"@path": "a..b"}}, "$.a.@path", "invalid path: empty key at character 3"),
        ({"a": {"@path": "$.a."}}, "$.a.@path", "ends with a dot"),
        ({"a": {"@template": False}}, "$.a.@template", "@template takes a string, not a boolean"),
        ({"a": {"@template": "{{ }}"}}, "$.a.@template", "empty placeholder"),
        ({"a": {"@if": {"exists": 1}}}, "$.a.@if", 'needs a "then" or an "else" branch'),
        ({"a": {"@if": {"then": 1}}}, "$.a.@if", '"exists" or "blank" (neither given)'),
        ({"a": {"@if": {"exists": 1, "blank": 1, "then": 1}}}, "$.a.@if", "(both given)"),
        ({"a": {"@if": {"exists": 1, "than": 1}}}, "$.a.@if.than", '@if has no option "than" (did you mean "then"?)'),
        ({"a": {"@if": "x"}}, "$.a.@if", "@if takes an object with the keys"),
        ({"a": {"@if": {"exists": {"@paht": "x"}, "then": 1}}}, "$.a.@if.exists", "did you mean @path?"),
        ({"a": {"@case": {"operator": "title", "value": "x"}}}, "$.a.@case.operator", '"lower" or "upper"'),
        ({"a": {"@case": {"value": "x"}}}, "$.a.@case", 'needs the option "operator"'),
        ({"a": {"@case": "not an object"}}, "$.a.@case", "not a string"),  # kit test
        ({"a": {"@replace": {"value": "x"}}}, "$.a.@replace", 'needs the option "pattern"'),
        ({"a": {"@replace": {"value": "x", "pattern": ""}}}, "$.a.@replace.pattern", "non-empty string"),
        ({"a": {"@replace": {"value": "x", "pattern": "-", "global": "yes"}}}, "$.a.@replace.global", "true or false"),
        (
            {"a": {"@replace": {"value": "x", "pattern": "-", "replacement2": "y"}}},
            "$.a.@replace.replacement2",
            "pattern2",
        ),
        ({"a": {"@json": {"mode": "oops", "value": 1}}}, "$.a.@json.mode", '"encode" or "decode"'),  # kit test
        ({"a": {"@flatten": {"value": 1}}}, "$.a.@flatten", 'needs the option "separator"'),
        ({"a": {"@merge": {"objects": {"oops": True}}}}, "$.a.@merge.objects", "must be a list"),  # kit test
        ({"a": {"@merge": {"objects": [{}, 1]}}}, "$.a.@merge.objects[1]", "not a number"),  # kit test
        ({"a": {"@merge": {"objects": [], "direction": "up"}}}, "$.a.@merge.direction", '"right" or "left"'),
        ({"a": {"@arrayPath": "$.x"}}, "$.a.@arrayPath", "takes a list [path, item mapping]"),
        ({"a": {"@arrayPath": ["$.x", {}, {}]}}, "$.a.@arrayPath", "takes a list"),
        ({"a": {"@arrayPath": [1]}}, "$.a.@arrayPath[0]", "a path or a directive"),
        ({"a": {"@arrayPath": ["$.x", "id"]}}, "$.a.@arrayPath[1]", "must be an object or a directive"),
        ({"a": {"@arrayPath": ["$.x", {"id": {"@pth": "$.id"}}]}}, "$.a.@arrayPath[1].id", "@pth"),
        ({"a": {"@transform": {"apply": {}}}}, "$.a.@transform", 'needs the option "mapping"'),
        ({"a": {"@transform": {"@path": {}}}}, "$.a.@transform", "not a directive"),  # kit test
        ({"my key": {"x": datetime.date(2026, 1, 1)}}, '$["my key"].x', "not a JSON value"),
        ({"a": {1: "x"}}, '$.a["1"]', "keys must be strings"),
        ({"a": float("nan")}, "$.a", "not a JSON number"),
    ],
)
def test_invalid_mappings_name_the_location(mapping: dict[str, Any], path: str, message: str) -> None:
    problem = error(mapping)
    assert problem.path == path
    assert message in problem.detail
    assert str(problem) == f"at {path}: {problem.detail}"
    assert isinstance(problem, ConfigError)


def test_error_message_reads_as_location_then_problem() -> None:
    problem = error({"user": {"email": {"@paht": "$.traits.email"}}})
    assert str(problem) == "at $.user.email: unknown directive @paht (did you mean @path?)"


def test_a_mapping_is_an_object() -> None:
    assert error(["not", "an", "object"]).detail.startswith("a mapping is an object")


def test_metadata_beside_a_directive_is_ignored() -> None:
    # the kit allows "_metadata" (editor information) beside the directive
    assert value({"@template": "{{a}}", "_metadata": {"label": "A"}}, {"a": "x"}) == "x"


def test_every_directive_of_the_kit_but_liquid_is_implemented() -> None:
    assert set(DIRECTIVES) == {
        "@path",
        "@template",
        "@literal",
        "@arrayPath",
        "@if",
        "@excludeWhenNull",
        "@case",
        "@replace",
        "@json",
        "@flatten",
        "@merge",
        "@transform",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abpq0"), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(event=st.dictionaries(st.sampled_from(["a", "b", "p", "properties"]), json_values, max_size=4))
def test_no_event_makes_a_mapping_raise(event: dict[str, Any]) -> None:
    mapping = compile_mapping(
        {
            "path": {"@path": "$.a.b[0].p"},
            "dynamic": {"@path": {"@path": "$.p"}},
            "template": {"@template": "{{a}} {{b.0}}"},
            "dynamic_template": {"@template": {"@path": "$.p"}},
            "if": {"@if": {"blank": {"@path": "$.a"}, "then": {"@path": "$.b"}, "else": [1]}},
            "case": {"@case": {"operator": "upper", "value": {"@path": "$.a"}}},
            "replace": {
                "@replace": {"pattern": "a", "replacement": "b", "ignorecase": True, "value": {"@path": "$.b"}}
            },
            "encode": {"@json": {"mode": "encode", "value": {"@path": "$"}}},
            "decode": {"@json": {"mode": "decode", "value": {"@path": "$.p"}}},
            "flat": {"@flatten": {"value": {"@path": "$"}, "separator": "."}},
            "merge": {"@merge": {"objects": [{"@path": "$.a"}, {"@path": "$.b"}], "direction": "left"}},
            "array": {"@arrayPath": ["$.properties", {"x": {"@path": "$.a"}, "all": {"@path": "$"}}]},
            "transform": {"@transform": {"apply": {"z": {"@path": "$.a"}}, "mapping": {"y": {"@path": "$.z.b"}}}},
            "exclude": {"@excludeWhenNull": {"@path": "$.properties"}},
        }
    )
    out = mapping.apply(event)
    assert isinstance(out, dict)
    assert out["encode"].startswith("{")


# -- actions: trigger + mapping ------------------------------------------------------------------

ACTIONS = [
    {
        "name": "orders",
        "trigger": 'type = "track" and event = "Order Completed"',
        "mapping": {"kind": "order", "id": {"@path": "$.properties.order_id"}},
    },
    {
        "name": "paused",
        "trigger": 'type = "track"',
        "mapping": {"kind": "paused"},
        "enabled": False,
    },
    {
        "name": "other tracks",
        "trigger": 'type = "track"',
        "mapping": {"kind": "track", "event": {"@path": "$.event"}},
    },
    {
        "name": "profiles",
        "trigger": 'type = "identify"',
        "mapping": {"kind": "profile", "email": {"@path": "$.traits.email"}},
    },
]


def test_the_first_enabled_matching_action_shapes_the_payload() -> None:
    actions = compile_actions(ACTIONS)
    assert [a.name for a in actions] == ["orders", "paused", "other tracks", "profiles"]

    order = events.track("Order Completed")
    chosen = select_action(actions, order)
    assert chosen is not None and chosen.name == "orders"
    assert chosen.payload(order) == {"kind": "order", "id": "ord-1001"}

    viewed = events.track("Product Viewed", {})
    chosen = select_action(actions, viewed)  # "paused" matches but is disabled
    assert chosen is not None and chosen.name == "other tracks"
    assert chosen.payload(viewed) == {"kind": "track", "event": "Product Viewed"}
    assert actions[1].matches(viewed) and not actions[1].enabled

    identify = events.identify({"email": "ann@example.com"})
    chosen = select_action(actions, identify)
    assert chosen is not None and chosen.payload(identify) == {"kind": "profile", "email": "ann@example.com"}

    # no trigger matches: the caller records reason "mapping_trigger"
    assert select_action(actions, events.page()) is None
    assert select_action([], order) is None


def test_action_set_gives_name_and_payload() -> None:
    action_set = compile_action_set(ACTIONS)
    assert isinstance(action_set, ActionSet)
    assert action_set.select(events.track("Order Completed")) == ("orders", {"kind": "order", "id": "ord-1001"})
    assert action_set.select(events.page()) is None


def test_action_specs() -> None:
    spec = ActionSpec(name="all", trigger='type = "track"', mapping={"e": {"@path": "$.event"}})
    assert spec.enabled is True
    action = compile_action(spec)
    assert isinstance(action, CompiledAction)
    assert action.spec is spec
    assert action.payload(events.track("Signed Up")) == {"e": "Signed Up"}
    assert "disabled" in repr(compile_action({**ACTIONS[1]}))


@pytest.mark.parametrize(
    ("actions", "path", "message"),
    [
        (
            [{"name": "a", "trigger": "event =", "mapping": {}}],
            "$[0].trigger",
            "the trigger does not compile: expected",
        ),
        (
            [ACTIONS[0], {"name": "b", "trigger": 'type = "page"', "mapping": {"x": {"@paht": "$.x"}}}],
            "$[1].mapping.x",
            "unknown directive @paht (did you mean @path?)",
        ),
        ([ACTIONS[0], ACTIONS[0]], "$[1].name", "the action name 'orders' is already used by action 0"),
        ([{"name": " ", "trigger": "true", "mapping": {}}], "$[0].name", "needs a name"),
        ([{"name": "a", "trigger": "true", "mapping": {}, "enable": False}], "$[0]", 'did you mean "enabled"?'),
        ([{"name": "a", "mapping": {}}], "$[0]", "missing required field `trigger`"),
        ([{"name": 1, "trigger": "true", "mapping": {}}], "$[0].name", "Expected `str`, got `int`"),
        ([{"name": "a", "trigger": "true", "mapping": []}], "$[0].mapping", "Expected `object`, got `array`"),
        (["orders"], "$[0]", "an action is an object"),
    ],
)
def test_invalid_actions_name_the_location(actions: list[Any], path: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        compile_actions(actions)
    assert caught.value.path == path
    assert message in caught.value.detail


# -- end to end: a webhook payload ---------------------------------------------------------------


def test_webhook_payload_end_to_end() -> None:
    """A CRM webhook: one action for orders, one for sign-ups, everything else filtered."""
    actions = compile_actions(
        [
            {
                "name": "order to crm",
                "trigger": 'type = "track" and event = "Order Completed"',
                "mapping": {
                    "@merge": {
                        "direction": "right",
                        "objects": [
                            {"source": "eventyard", "currency": "USD"},
                            {
                                "event_type": {"@case": {"operator": "lower", "value": {"@path": "$.event"}}},
                                "external_id": {"@path": "$.userId"},
                                "email": {"@excludeWhenNull": {"@path": "$.context.traits.email"}},
                                "currency": {"@path": "$.properties.currency"},
                                "value": {"@path": "$.properties.revenue"},
                                "order": {"@path": "$.properties.order_id"},
                                "page": {"@path": "$.context.page.url"},
                                "summary": {"@template": "Order {{properties.order_id}} ({{properties.revenue}})"},
                                "phone": {
                                    "@replace": {
                                        "value": {"@path": "$.context.traits.phone"},
                                        "pattern": " ",
                                        "pattern2": "-",
                                    }
                                },
                                "contents": {
                                    "@arrayPath": [
                                        "$.properties.products",
                                        {"id": {"@path": "$.sku"}, "quantity": {"@path": "$.quantity"}},
                                    ]
                                },
                                "context": {
                                    "@flatten": {
                                        "value": {
                                            "ip": {"@path": "$.context.ip"},
                                            "lib": {"@path": "$.context.library"},
                                        },
                                        "separator": "_",
                                    }
                                },
                                "raw": {"@json": {"mode": "encode", "value": {"@path": "$.properties.products"}}},
                                "vip": {
                                    "@if": {"exists": {"@path": "$.properties.coupon"}, "then": False, "else": True}
                                },
                            },
                        ],
                    }
                },
            },
            {
                "name": "signup to crm",
                "trigger": 'type = "identify"',
                "mapping": {"external_id": {"@path": "$.userId"}, "traits": {"@path": "$.traits"}},
            },
        ]
    )
    order = events.track(
        context={**events.default_context(), "traits": {"email": None, "phone": "+49 170-1234"}},
    )
    chosen = select_action(actions, order)
    assert chosen is not None and chosen.name == "order to crm"
    assert chosen.payload(order) == {
        "source": "eventyard",
        "currency": "EUR",
        "event_type": "order completed",
        "external_id": "user-0001",
        "value": 42.5,
        "order": "ord-1001",
        "summary": "Order ord-1001 (42.5)",
        "phone": "+491701234",
        "contents": [{"id": "SKU-7", "quantity": 2}],
        "context": {"ip": "203.0.113.7", "lib_name": "analytics-python", "lib_version": "2.3.3"},
        "raw": '[{"sku":"SKU-7","quantity":2}]',
        "vip": True,
    }
    signup = events.identify({"email": "ann@example.com"})
    chosen = select_action(actions, signup)
    assert chosen is not None
    assert chosen.payload(signup) == {"external_id": "user-0001", "traits": {"email": "ann@example.com"}}
    assert select_action(actions, events.track("Product Viewed")) is None
