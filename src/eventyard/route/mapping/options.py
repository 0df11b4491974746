"""Checking a directive's options at compile time; every problem names its location."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventyard.route.mapping.errors import MappingError, child, describe, did_you_mean
from eventyard.route.mapping.paths import Node, PathSyntaxError, getter, parse_path

#: Compiles a nested piece of mapping found at a location.
Sub = Callable[[Any, str], Node]
DirectiveCompiler = Callable[[Any, str, Sub], Node]


def is_directive(value: Any) -> bool:
    """An object with an @-key (checked further when it is compiled)."""
    return isinstance(value, dict) and any(isinstance(key, str) and key.startswith("@") for key in value)


def options(value: Any, at: str, name: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    """The options object of directive ``name``, checked for missing and unknown keys."""
    allowed = required + optional
    if not isinstance(value, dict) or is_directive(value):
        keys = ", ".join(f'"{key}"' for key in allowed)
        kind = "a directive" if isinstance(value, dict) else describe(value)
        raise MappingError(at, f"{name} takes an object with the keys {keys}, not {kind}")
    for key in value:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed, quoted=True)
            raise MappingError(child(at, str(key)), f'{name} has no option "{key}"{hint}')
    for key in required:
        if key not in value:
            raise MappingError(at, f'{name} needs the option "{key}"')
    return value


def choice(opts: dict[str, Any], key: str, at: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    """Option ``key``: one of ``allowed`` (``default`` when absent)."""
    value = opts.get(key, default)
    for candidate in allowed:
        if value == candidate:
            return candidate
    names = " or ".join(f'"{candidate}"' for candidate in allowed)
    raise MappingError(child(at, key), f"must be {names}, not {value!r}")


def flag(opts: dict[str, Any], key: str, at: str, default: bool) -> bool:
    """Option ``key``: true or false (``default`` when absent)."""
    value = opts.get(key, default)
    if not isinstance(value, bool):
        raise MappingError(child(at, key), f"must be true or false, not {describe(value)}")
    return value


def text_option(opts: dict[str, Any], key: str, at: str, *, empty: bool, default: str | None = None) -> str:
    """Option ``key``: a string, non-empty unless ``empty``; absent or null gives ``default``."""
    value = opts.get(key, default)
    if value is None and default is not None:
        value = default
    if not isinstance(value, str) or (not empty and not value):
        want = "a string" if empty else "a non-empty string"
        raise MappingError(child(at, key), f"must be {want}, not {describe(value)}")
    return value


def object_or_directive(value: Any, at: str, what: str) -> None:
    """Refuse anything but an object (a plain one, or a directive)."""
    if not isinstance(value, dict):
        raise MappingError(at, f"{what} must be an object or a directive, not {describe(value)}")


def path_option(value: str, at: str) -> Node:
    """The getter for a path written in the mapping."""
    try:
        return getter(parse_path(value))
    except PathSyntaxError as exc:
        raise MappingError(at, f"invalid path: {exc}") from None
