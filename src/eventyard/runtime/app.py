"""The ASGI application of one process: tracking API first, control plane behind it."""

from __future__ import annotations

from eventyard.collect.app import CollectApp
from eventyard.control.app import create_control_app
from eventyard.runtime.components import Components, build
from eventyard.runtime.settings import Settings


def create_app(settings: Settings, components: Components | None = None) -> CollectApp:
    components = components or build(settings)
    control = create_control_app(components)
    app = CollectApp(
        log=components.log,
        sources=components.sources,
        metrics=components.metrics,
        fallback=control,
        backlog_limit=settings.backlog_limit,
        trust_forwarded_for=settings.trust_forwarded_for,
        public_url=settings.public_url,
    )
    app.ingestor.suppressions = components.suppressions  # suppressed users' events are refused
    return app
