"""The state store: workspaces, sources, tokens and, in later stages, everything configured."""

from eventyard.state.base import (
    Connection,
    DeliveryPolicy,
    DestinationConfig,
    DestinationHealth,
    Source,
    StateStore,
    Token,
    Workspace,
)

__all__ = [
    "Connection",
    "DeliveryPolicy",
    "DestinationConfig",
    "DestinationHealth",
    "Source",
    "StateStore",
    "Token",
    "Workspace",
]
