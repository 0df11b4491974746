"""The ``function`` destination: the user's Python handlers, isolated in a worker process."""

from eventyard.destinations.function.destination import FunctionDestination, outcome_of
from eventyard.destinations.function.settings import FunctionSettings

__all__ = ["FunctionDestination", "FunctionSettings", "outcome_of"]
