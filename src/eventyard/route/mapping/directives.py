"""The directives: each turns its options into a ``Node`` once, at compile time.

A directive compiler gets its options, their location in the mapping and ``sub``, which
compiles a nested piece of mapping. Options are checked completely here (types, allowed
values, unknown keys), so a compiled node never raises on any event: a value of the wrong
kind at run time resolves the way the mapping kit resolves it, or to ``MISSING``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeGuard

import msgspec

from eventyard.route.mapping.errors import MappingError, child, describe
from eventyard.route.mapping.options import (
    DirectiveCompiler,
    Sub,
    choice,
    flag,
    is_directive,
    object_or_directive,
    options,
    path_option,
    text_option,
)
from eventyard.route.mapping.paths import MISSING, Node, PathSyntaxError, cached_getter
from eventyard.route.mapping.text import cached_template, compile_template, json_text, scalar_text

#: Directives of the mapping kit that eventyard does not implement, with what to use instead.
UNSUPPORTED = {"@liquid": "use @template for text, @if and @case for logic"}


def _missing(root: Any) -> Any:
    return MISSING


# -- reading values ---------------------------------------------------------------------------


def compile_path(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@path": "$.properties.price"}``: the value at a path; a directive may compute the path."""
    if isinstance(raw, str):
        return path_option(raw, at)
    if not is_directive(raw):
        raise MappingError(at, f'@path takes a path like "$.properties.price", not {describe(raw)}')
    inner = sub(raw, at)

    def dynamic_path(root: Any) -> Any:
        path = inner(root)
        get = cached_getter(path) if isinstance(path, str) else None
        return MISSING if get is None else get(root)

    return dynamic_path


def compile_template_directive(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@template": "Hi {{traits.name}}"}``: text with ``{{path}}`` placeholders filled in."""
    if isinstance(raw, str):
        try:
            return compile_template(raw)
        except PathSyntaxError as exc:
            raise MappingError(at, f"invalid template: {exc}") from None
    if not is_directive(raw):
        raise MappingError(at, f"@template takes a string, not {describe(raw)}")
    inner = sub(raw, at)

    def dynamic_template(root: Any) -> Any:
        template = inner(root)
        render = cached_template(template) if isinstance(template, str) else None
        return MISSING if render is None else render(root)

    return dynamic_template


def compile_literal(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@literal": value}``: the value itself (directives inside it still resolve, as in the kit)."""
    return sub(raw, at)


def compile_array_path(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@arrayPath": [path, item_mapping]}``: a list, each item reshaped by ``item_mapping``
    with paths relative to the item. A single object is treated as a list of one."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
        raise MappingError(at, f"@arrayPath takes a list [path, item mapping], not {describe(raw)}")
    first = raw[0]
    if isinstance(first, str):
        source = path_option(first, child(at, 0))
    elif is_directive(first):
        source = sub(first, child(at, 0))
    else:
        raise MappingError(child(at, 0), f"must be a path or a directive, not {describe(first)}")
    shape = raw[1] if len(raw) == 2 else {}
    object_or_directive(shape, child(at, 1), "the item mapping")
    if not shape:
        return source
    item = sub(shape, child(at, 1))

    def array_path(root: Any) -> Any:
        found = source(root)
        if isinstance(found, dict):
            found = [found]
        elif not isinstance(found, list):
            return found
        return [None if (value := item(entry)) is MISSING else value for entry in found]

    return array_path


# -- conditions -------------------------------------------------------------------------------


def compile_if(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@if": {"exists" | "blank": value, "then": ..., "else": ...}}``.

    ``then`` is used when the value exists (is neither missing nor null), or with ``blank``
    when it is not blank (missing, null or ``""``); else ``else``. A branch that is not given
    resolves to nothing (the key is left out).
    """
    opts = options(raw, at, "@if", (), ("exists", "blank", "then", "else"))
    tests = [key for key in ("exists", "blank") if key in opts]
    if len(tests) != 1:
        problem = "both" if tests else "neither"
        raise MappingError(at, f'@if needs exactly one condition, "exists" or "blank" ({problem} given)')
    if "then" not in opts and "else" not in opts:
        raise MappingError(at, '@if needs a "then" or an "else" branch')
    test = tests[0]
    value = sub(opts[test], child(at, test))
    then = sub(opts["then"], child(at, "then")) if "then" in opts else _missing
    otherwise = sub(opts["else"], child(at, "else")) if "else" in opts else _missing

    if test == "exists":

        def if_exists(root: Any) -> Any:
            found = value(root)
            return then(root) if found is not None and found is not MISSING else otherwise(root)

        return if_exists

    def if_not_blank(root: Any) -> Any:
        found = value(root)
        return otherwise(root) if found is None or found is MISSING or found == "" else then(root)

    return if_not_blank


def compile_exclude_when_null(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@excludeWhenNull": value}``: leave the key out when the value is null; in an object,
    drop the keys whose value is null, at every depth of nested objects."""
    inner = sub(raw, at)

    def exclude_when_null(root: Any) -> Any:
        value = inner(root)
        if value is None:
            return MISSING
        return _without_nulls(value) if isinstance(value, dict) else value

    return exclude_when_null


def _without_nulls(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _without_nulls(value) if isinstance(value, dict) else value
        for key, value in obj.items()
        if value is not None
    }


# -- changing values --------------------------------------------------------------------------


def compile_case(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@case": {"operator": "lower" | "upper", "value": ...}}``; non-strings pass unchanged."""
    opts = options(raw, at, "@case", ("operator", "value"), ())
    convert = str.lower if choice(opts, "operator", at, ("lower", "upper")) == "lower" else str.upper
    value = sub(opts["value"], child(at, "value"))

    def case(root: Any) -> Any:
        found = value(root)
        return convert(found) if isinstance(found, str) else found

    return case


def _replacer(pattern: str, replacement: str, everywhere: bool, ignore_case: bool) -> Callable[[str], str]:
    """Literal (not regular-expression) replacement, like the kit's escaped pattern."""
    if not ignore_case:
        count = -1 if everywhere else 1
        return lambda text: text.replace(pattern, replacement, count)
    regex = re.compile(re.escape(pattern), re.IGNORECASE)
    escaped = replacement.replace("\\", "\\\\")
    limit = 0 if everywhere else 1
    return lambda text: regex.sub(escaped, text, count=limit)


def compile_replace(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@replace": {"value", "pattern", "replacement", "global", "ignorecase", "pattern2", "replacement2"}}``.

    Patterns are literal text. ``global`` (default true) replaces every occurrence, else the
    first; ``ignorecase`` (default false). ``pattern2``/``replacement2`` then apply to the
    result with the same flags. Numbers and booleans are replaced in their text form.
    """
    opts = options(
        raw,
        at,
        "@replace",
        ("pattern", "value"),
        ("replacement", "global", "ignorecase", "pattern2", "replacement2"),
    )
    everywhere = flag(opts, "global", at, True)
    ignore_case = flag(opts, "ignorecase", at, False)
    steps = [
        _replacer(
            text_option(opts, "pattern", at, empty=False),
            text_option(opts, "replacement", at, empty=True, default=""),
            everywhere,
            ignore_case,
        )
    ]
    if "pattern2" in opts:
        pattern2 = text_option(opts, "pattern2", at, empty=False)
        replacement2 = text_option(opts, "replacement2", at, empty=True, default="")
        steps.append(_replacer(pattern2, replacement2, everywhere, ignore_case))
    elif "replacement2" in opts:
        raise MappingError(child(at, "replacement2"), '"replacement2" needs a "pattern2"')
    value = sub(opts["value"], child(at, "value"))

    def replace(root: Any) -> Any:
        found = value(root)
        text = scalar_text(found)
        if text is None:
            return found
        for step in steps:
            text = step(text)
        return text

    return replace


def compile_json(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@json": {"mode": "encode" | "decode", "value": ...}}``. Decoding text that is not JSON
    gives the text back unchanged; a non-string passes unchanged."""
    opts = options(raw, at, "@json", ("mode", "value"), ())
    mode = choice(opts, "mode", at, ("encode", "decode"))
    value = sub(opts["value"], child(at, "value"))
    if mode == "encode":

        def encode(root: Any) -> Any:
            found = value(root)
            return MISSING if found is MISSING else json_text(found)

        return encode

    def decode(root: Any) -> Any:
        found = value(root)
        if not isinstance(found, str):
            return found
        try:
            return msgspec.json.decode(found)
        except msgspec.DecodeError:
            return found

    return decode


def compile_flatten(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@flatten": {"value": ..., "separator": ".", "omitArrays": false}}``: nested keys joined
    into one level (``{"a": {"b": 1}}`` → ``{"a.b": 1}``); list items are keyed by index unless
    ``omitArrays``. A value that is not an object (or list) passes unchanged."""
    opts = options(raw, at, "@flatten", ("value", "separator"), ("omitArrays",))
    separator = text_option(opts, "separator", at, empty=False)
    keep_lists = flag(opts, "omitArrays", at, False)
    value = sub(opts["value"], child(at, "value"))

    def nested(item: Any) -> TypeGuard[dict[str, Any] | list[Any]]:
        return isinstance(item, dict) or (not keep_lists and isinstance(item, list))

    def walk(out: dict[str, Any], prefix: str, container: dict[str, Any] | list[Any]) -> None:
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in items:
            name = f"{prefix}{separator}{key}" if prefix else str(key)
            if nested(item):
                walk(out, name, item)
            else:
                out[name] = item

    def flatten(root: Any) -> Any:
        found = value(root)
        if not nested(found):
            return found
        out: dict[str, Any] = {}
        walk(out, "", found)
        return out

    return flatten


def compile_merge(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@merge": {"objects": [...], "direction": "right" | "left"}}``: one object from many.
    With ``right`` (the default) later objects win on duplicate keys, with ``left`` earlier ones.
    Items that resolve to anything but an object are skipped."""
    opts = options(raw, at, "@merge", ("objects",), ("direction",))
    direction = choice(opts, "direction", at, ("right", "left"), default="right")
    objects = opts["objects"]
    where = child(at, "objects")
    if not isinstance(objects, list):
        raise MappingError(where, f"must be a list of objects or directives, not {describe(objects)}")
    nodes = []
    for i, item in enumerate(objects):
        object_or_directive(item, child(where, i), "each item")
        nodes.append(sub(item, child(where, i)))
    if direction == "left":
        nodes.reverse()
    parts = tuple(nodes)

    def merge(root: Any) -> Any:
        out: dict[str, Any] = {}
        for part in parts:
            found = part(root)
            if isinstance(found, dict):
                out.update(found)
        return out

    return merge


def compile_transform(raw: Any, at: str, sub: Sub) -> Node:
    """``{"@transform": {"apply": mapping1, "mapping": mapping2}}``: ``mapping2`` applied to the
    result of ``mapping1``, for mappings that must run in sequence."""
    opts = options(raw, at, "@transform", ("apply", "mapping"), ())
    for key in ("apply", "mapping"):
        object_or_directive(opts[key], child(at, key), f'"{key}"')
    first = sub(opts["apply"], child(at, "apply"))
    then = sub(opts["mapping"], child(at, "mapping"))

    def transform(root: Any) -> Any:
        return then(first(root))

    return transform


DIRECTIVES: dict[str, DirectiveCompiler] = {
    "@path": compile_path,
    "@template": compile_template_directive,
    "@literal": compile_literal,
    "@arrayPath": compile_array_path,
    "@if": compile_if,
    "@excludeWhenNull": compile_exclude_when_null,
    "@case": compile_case,
    "@replace": compile_replace,
    "@json": compile_json,
    "@flatten": compile_flatten,
    "@merge": compile_merge,
    "@transform": compile_transform,
}
