"""The state store: workspaces, sources, tokens and, in later stages, everything configured."""

from eventyard.state.base import Source, StateStore, Token, Workspace

__all__ = ["Source", "StateStore", "Token", "Workspace"]
