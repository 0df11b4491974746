"""New sources join the warehouses that ask for every source (``auto_connect: true``).

The embedded DuckDB warehouse created at first start has ``auto_connect: true`` in its
settings, so every source created later in its workspace (by ``eventyard apply`` or the API)
is loaded into it at once, in a schema named after the source. Only sources created from now
on are connected, once: a connection removed by hand is not made again, and setting
``auto_connect: false`` (or leaving it out) stops it for future sources.
"""

from __future__ import annotations

from eventyard.state.base import DestinationConfig, Source, StateStore

#: The destination setting that asks for every new source of its workspace.
AUTO_CONNECT = "auto_connect"


def wants_every_source(destination: DestinationConfig) -> bool:
    return destination.enabled and destination.settings.get(AUTO_CONNECT) is True


async def connect_new_source(state: StateStore, source: Source) -> list[DestinationConfig]:
    """Connect a source just created to the destinations of its workspace that want every source."""
    connected = {c.destination_id for c in await state.list_connections() if c.source_id == source.id}
    joined = []
    for destination in await state.list_destinations(source.workspace_id):
        if wants_every_source(destination) and destination.id not in connected:
            await state.set_connection(source.id, destination.id)
            joined.append(destination)
    return joined
