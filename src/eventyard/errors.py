"""Errors of eventyard, grouped by what the caller should do about them.

::

    EventyardError                 base of everything raised on purpose
    ├── ConfigError                the configuration is wrong: fix it, then retry
    │   └── ConfigFileError        ... in a file, with the position of the problem
    ├── Retryable                  try the same thing again later
    │   ├── LogFull                the log refuses more (backlog cap or disk full)
    │   └── Unavailable            a backend cannot be reached right now
    ├── Terminal                   the same input will fail again: do not retry
    │   └── NotFound               the thing asked for does not exist
    └── Skip                       nothing to do for this input; record why and move on

Messages say what happened and what to do next. Foreign exceptions (sqlite3, OSError, ...)
are translated into these where they enter eventyard, so callers never catch driver errors.
"""

from __future__ import annotations


class EventyardError(Exception):
    """Base of every error eventyard raises on purpose."""


class ConfigError(EventyardError):
    """The configuration is invalid; the message names the key and what is expected."""


class ConfigFileError(ConfigError):
    """A configuration file is invalid at a known position."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.detail = message
        where = path
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}")


class Retryable(EventyardError):
    """Temporary failure: the same call may succeed later."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LogFull(Retryable):
    """The event log cannot take more records now (backlog over its cap, or disk full)."""


class Unavailable(Retryable):
    """A backend (log, state store, destination) cannot be reached right now."""


class Terminal(EventyardError):
    """Permanent failure for this input: retrying the same thing fails the same way."""


class NotFound(Terminal):
    """The requested object does not exist."""


class Skip(EventyardError):
    """Nothing to do for this input; the reason is recorded, nothing is lost silently."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
