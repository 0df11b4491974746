"""The public API for function authors: errors a destination function raises to say what happened.

A destination function is a Python module with any of ``on_track``, ``on_identify``,
``on_page``, ``on_screen``, ``on_group``, ``on_alias``, ``on_delete`` (``(event, settings)``)
and ``on_batch`` (``(events, settings)``), sync or async. Returning normally means delivered.
Raising tells eventyard what to do with the event, as in Segment's destination functions::

    from eventyard.functions import RetryError, ValidationError

    async def on_track(event, settings):
        if "email" not in event.get("properties", {}):
            raise ValidationError("email is required")
        ...
        if response.status >= 500:
            raise RetryError(f"the API answered {response.status}")

=====================  ===========================================================
raised                 outcome
=====================  ===========================================================
``RetryError``         retried later (as are timeouts)
``DropEvent``          dropped on purpose, with the reason given
``EventNotSupported``  dropped with reason ``event_not_supported``
``InvalidEventPayload`` failed, not retried (dead letter)
``ValidationError``    failed, not retried (dead letter)
anything else          failed, not retried, with the exception's type and message
=====================  ===========================================================

This module imports nothing from eventyard: it is loaded inside the function's own process.
"""

from __future__ import annotations

__all__ = [
    "DropEvent",
    "EventNotSupported",
    "FunctionError",
    "InvalidEventPayload",
    "RetryError",
    "ValidationError",
]


class FunctionError(Exception):
    """Base of the errors a function raises on purpose."""


class RetryError(FunctionError):
    """A temporary failure (the API is down, rate limited, ...): deliver the event again later."""


class DropEvent(FunctionError):
    """Do not deliver this event, on purpose; ``reason`` is recorded as the drop reason."""

    def __init__(self, reason: str = "dropped_by_function") -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEventPayload(FunctionError):
    """The event lacks something the function needs; retrying cannot help."""


class ValidationError(FunctionError):
    """The event (or the settings) fails the function's validation; retrying cannot help."""


class EventNotSupported(FunctionError):
    """The function does not handle this kind of event (also what a missing handler means)."""
