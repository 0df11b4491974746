"""`eventyard serve`: bootstrap on first start, print how to send, run the server."""

from __future__ import annotations

import asyncio
import logging
import shlex

import uvicorn

from eventyard.cli.common import console, fail
from eventyard.errors import ConfigError, Terminal, Unavailable
from eventyard.runtime import backends, workers
from eventyard.runtime.bootstrap import Bootstrap, ensure_defaults
from eventyard.runtime.components import make_log, make_state
from eventyard.runtime.roles import create_role_app
from eventyard.runtime.settings import Settings


async def _bootstrap(settings: Settings) -> Bootstrap:
    if backends.is_nats(settings.log):
        # Reach NATS (and create the stream) before serving, so a wrong URL fails here, clearly.
        event_log = make_log(settings)
        await event_log.start()
        await event_log.close()
    state = make_state(settings)
    await state.start()
    warehouse = not backends.is_scale_out(settings)
    try:
        try:
            return await ensure_defaults(state, settings.data_path, settings.admin_token, warehouse)
        except Terminal:
            # Several processes started at once on one PostgreSQL: another one created the
            # defaults first; this pass finds them.
            return await ensure_defaults(state, settings.data_path, settings.admin_token, warehouse)
    finally:
        await state.close()


def banner(settings: Settings, boot: Bootstrap) -> None:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    console.rule("[bold]eventyard")
    console.print(f"roles           {', '.join(settings.roles)}")
    if settings.workers > 1:
        console.print(f"workers         {settings.workers} processes on one port")
    if backends.is_scale_out(settings):
        shown = repr(settings)  # URLs with their passwords redacted
        console.print(f"log             {_field(shown, 'log')}  (NATS JetStream)", highlight=False)
        console.print(f"state           {_field(shown, 'state')}  (PostgreSQL)", highlight=False)
    else:
        console.print(f"data directory  {settings.data_path}")
    collect = "collect" in settings.roles
    if collect:
        console.print(f"tracking API    {base}/v1/track  (and /v1/batch, /v1/identify, ...)")
    for source in boot.sources:
        console.print(f"source          {source.name}  write key: [bold]{source.write_key}[/]")
    if boot.created and not backends.is_scale_out(settings):
        warehouse = settings.data_path / "warehouse.duckdb"
        console.print(f'warehouse       {warehouse}  (query it: eventyard sql "SELECT ...")')
    if boot.new_admin_token:
        console.print(f"admin token     [bold]{boot.new_admin_token}[/]  (saved to {boot.token_file})")
    elif settings.admin_token:
        console.print("admin token     from EVENTYARD_ADMIN_TOKEN")
    else:
        console.print(f"admin token     in {boot.token_file}")
    if boot.sources and collect:
        key = boot.sources[0].write_key
        body = '{"userId":"user-1","event":"Signed Up","properties":{"plan":"pro"}}'
        console.print("\nsend a first event:")
        console.print(
            f"  curl -u {shlex.quote(key + ':')} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)} {base}/v1/track",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"watch it arrive:\n  eventyard tail --url {base} --data-dir {settings.data_path}", soft_wrap=True
        )
    console.rule()


def _field(shown: str, name: str) -> str:
    start = shown.index(f" {name}='") + len(name) + 3
    return shown[start : shown.index("'", start)]


def run(settings: Settings) -> None:
    try:
        backends.check(settings)
        boot = asyncio.run(_bootstrap(settings))
    except (ConfigError, Unavailable) as exc:
        fail(str(exc))
    banner(settings, boot)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_role_app(settings)
    if settings.workers > 1:
        workers.serve(settings, app)
        return
    uvicorn.Server(workers.uvicorn_config(settings, app)).run()
