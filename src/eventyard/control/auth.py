"""Who is calling the control API, and what their token lets them do.

Tokens carry a role and, optionally, a workspace:

======== ======================================================================
role     may
======== ======================================================================
owner    everything in its workspace; with no workspace, everything everywhere
         (the token printed on first start), including workspaces and tokens
editor   read and change configuration and data of its workspace
viewer   read only (GET/HEAD)
profiles only the Profile API (``/v1/spaces/...``); refused everywhere else
======== ======================================================================

A token bound to a workspace never sees another workspace's objects: list endpoints filter
by :meth:`Principal.sees`, object endpoints answer 404 for objects of other workspaces (the
same answer as for objects that do not exist, so ids cannot be probed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

import msgspec
from starlette.requests import Request

from eventyard.control.http import ApiError
from eventyard.state.base import StateStore, Workspace
from eventyard.state.ids import hash_token

ADMIN_ROLES = ("owner", "editor", "viewer")
#: The roles a token may be created with through the API.
TOKEN_ROLES = (*ADMIN_ROLES, "profiles")
_READ_METHODS = frozenset({"GET", "HEAD"})
_CACHE_SECONDS = 5.0


class Principal(msgspec.Struct, frozen=True):
    token_id: str
    name: str
    role: str
    #: ``None``: not bound to a workspace (only owners may be).
    workspace_id: str | None

    @property
    def can_write(self) -> bool:
        return self.role in ("owner", "editor")

    @property
    def is_global_owner(self) -> bool:
        return self.role == "owner" and self.workspace_id is None

    def sees(self, workspace_id: str | None) -> bool:
        return self.workspace_id is None or self.workspace_id == workspace_id

    @property
    def actor(self) -> str:
        """How the audit trail names this caller (never the secret)."""
        return f"{self.token_id}:{self.name}"


class _Scoped(Protocol):
    @property
    def workspace_id(self) -> str: ...


S = TypeVar("S", bound=_Scoped)


class RateLimiter:
    """A token bucket per key: ``rate`` per second, bursts of ``2 * rate``; 0 = unlimited."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = 2 * rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_seconds(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 if allowed, else seconds until allowed."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        level, last = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        if level < 1:
            self._buckets[key] = (level, now)
            return (1 - level) / self.rate
        self._buckets[key] = (level - 1, now)
        return 0.0


class Authenticator:
    """Bearer token -> :class:`Principal`, cached for a few seconds per token; each token's
    requests are rate limited (``admin_rate_limit_per_second``): 429 with Retry-After."""

    def __init__(self, state: StateStore, rate_limit_per_second: float = 0.0) -> None:
        self._state = state
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self.limiter = RateLimiter(rate_limit_per_second)

    async def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await self._state.token_by_hash(digest)
        principal = Principal(found.id, found.name, found.role, found.workspace_id) if found else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + _CACHE_SECONDS, principal)
        return principal

    def forget(self) -> None:
        """Drop cached tokens (after a token was revoked through the API)."""
        self._cache.clear()

    async def authenticate(self, request: Request) -> Principal:
        """The caller of an admin endpoint; 401/403 with a message that says what to do.

        Viewers may only read; Profile API tokens are refused. The principal is kept on
        ``request.state.principal`` for the endpoint and the audit trail.
        """
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing_token", "send `Authorization: Bearer <admin token>`")
        principal = await self.lookup(token.strip())
        if principal is None:
            raise ApiError(401, "invalid_token", "the token is not valid")
        wait = self.limiter.wait_seconds(principal.token_id)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"more than {self.limiter.rate:g} requests per second with this token; retry after {wait:.2f}s",
                retry_after=max(1, math.ceil(wait)),
            )
        if principal.role not in ADMIN_ROLES:
            raise ApiError(403, "forbidden", f"a {principal.role!r} token can only be used with the Profile API")
        if request.method not in _READ_METHODS and not principal.can_write:
            raise ApiError(403, "forbidden", "this token is read-only (viewer); use an editor or owner token")
        request.state.principal = principal
        return principal


def principal_of(request: Request) -> Principal | None:
    """The principal :meth:`Authenticator.authenticate` stored on the request, if any."""
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else None


def visible(principal: Principal | None, items: Iterable[S]) -> list[S]:
    """The items of workspaces the caller may see."""
    if principal is None or principal.workspace_id is None:
        return list(items)
    return [i for i in items if i.workspace_id == principal.workspace_id]


def require_global_owner(principal: Principal) -> None:
    if not principal.is_global_owner:
        raise ApiError(403, "forbidden", "only an owner token that is not bound to a workspace may do this")


async def target_workspace(state: StateStore, principal: Principal, ref: str | None) -> Workspace:
    """The workspace a new object goes to: the token's own, else ``ref`` (id or name), else
    the only workspace there is. 404 for workspaces the caller may not see."""
    workspaces = [w for w in await state.list_workspaces() if principal.sees(w.id)]
    if ref:
        for ws in workspaces:
            if ref in (ws.id, ws.name):
                return ws
        raise ApiError(404, "not_found", f"no workspace with id or name {ref!r}")
    if len(workspaces) == 1:
        return workspaces[0]
    raise ApiError(400, "missing_workspace", "several workspaces exist: name one with `workspace`")
