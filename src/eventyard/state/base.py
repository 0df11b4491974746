"""The StateStore contract and the records it holds."""

from __future__ import annotations

from typing import Protocol

import msgspec

from eventyard.spec.limits import Limits


class Workspace(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class Source(msgspec.Struct, frozen=True):
    id: str
    workspace_id: str
    name: str
    write_key: str
    enabled: bool = True
    limits: Limits = Limits()
    created_at: float = 0.0


class Token(msgspec.Struct, frozen=True):
    """An API token; only the SHA-256 of the secret is stored."""

    id: str
    name: str
    role: str
    token_hash: str
    workspace_id: str | None = None
    created_at: float = 0.0


class StateStore(Protocol):
    """Configuration and long-lived state. Every change bumps ``config_version``."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def config_version(self) -> int: ...

    async def create_workspace(self, name: str) -> Workspace: ...

    async def list_workspaces(self) -> list[Workspace]: ...

    async def workspace_by_name(self, name: str) -> Workspace | None: ...

    async def create_source(
        self,
        workspace_id: str,
        name: str,
        *,
        write_key: str | None = None,
        enabled: bool = True,
        limits: Limits | None = None,
    ) -> Source: ...

    async def update_source(
        self,
        source_id: str,
        *,
        write_key: str | None = None,
        enabled: bool | None = None,
        limits: Limits | None = None,
    ) -> Source: ...

    async def list_sources(self, workspace_id: str | None = None) -> list[Source]: ...

    async def source_by_write_key(self, write_key: str) -> Source | None: ...

    async def add_token(self, name: str, role: str, token_hash: str, workspace_id: str | None = None) -> Token: ...

    async def token_by_hash(self, token_hash: str) -> Token | None: ...

    async def list_tokens(self) -> list[Token]: ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...
