"""What one process serves over HTTP, from its roles.

Every process answers ``/health``, ``/ready``, ``/metrics`` and ``/version`` (so a load
balancer and Prometheus can watch unify and route processes too). The tracking API (``/v1/...``,
``/pixel/...``, ``/beacon/...``, ``/sourceConfig``, ``/b``) needs the ``collect`` role; the
control API and the UI (everything else) need ``control``. A path of a role this process does
not run gets ``404`` with a JSON body naming the role, so a misrouted request is obvious.

The work roles: ``unify`` runs the pipeline (lease ``ingest`` → stages → delivery jobs) and
``route`` the delivery workers. Any number of processes may run each role against one NATS log
and PostgreSQL state: they share the work through leases, and a dead process's leases expire
and go to the others (``runtime.components`` starts the workers).
"""

from __future__ import annotations

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from eventyard.runtime.app import create_app
from eventyard.runtime.components import Components
from eventyard.runtime.settings import ALL_ROLES, Settings

_ALWAYS = ("/health", "/ready", "/metrics", "/version")
_TRACKING = ("/v1/", "/pixel/", "/beacon/", "/sourceConfig", "/b")


def role_of(path: str) -> str | None:
    """The role a path belongs to (``None``: served by every process)."""
    if path in _ALWAYS:
        return None
    if path.startswith(_TRACKING) or path in ("/m",):
        return "collect"
    return "control"


class RoleGate:
    """Answers 404 for paths of roles this process does not run; passes the rest on."""

    def __init__(self, app: ASGIApp, roles: tuple[str, ...]) -> None:
        self.app = app
        self.roles = roles

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            role = role_of(scope["path"])
            if role is not None and role not in self.roles:
                body = msgspec.json.encode(
                    {
                        "code": "role_not_served",
                        "message": f"this process runs the roles {', '.join(self.roles)}; "
                        f"{scope['path']} needs the {role} role: send it to a process that runs it",
                    }
                )
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 404, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_role_app(settings: Settings, components: Components | None = None) -> ASGIApp:
    """The process's ASGI app: the whole app, behind a gate unless it runs every role."""
    app = create_app(settings, components)
    if set(settings.roles) >= set(ALL_ROLES):
        return app
    return RoleGate(app, settings.roles)
