"""Finds destination classes through the entry point group ``eventyard.destinations``.

Built-in destinations are registered in eventyard's own ``pyproject.toml``; a third-party
package registers its own the same way::

    [project.entry-points."eventyard.destinations"]
    my_crm = "my_package.destination:MyCrmDestination"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from eventyard.destinations.base import Destination
from eventyard.errors import ConfigError

GROUP = "eventyard.destinations"


@cache
def available() -> dict[str, str]:
    """Registered destination names -> ``module:Class`` (nothing is imported)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load(name: str) -> type[Destination]:
    """Import and return the destination class registered as ``name``."""
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Destination)):
                raise ConfigError(f"entry point {name!r} ({ep.value}) is not a Destination subclass")
            return cls
    known = ", ".join(sorted(available())) or "none"
    raise ConfigError(f"no destination type {name!r}; available: {known}")
