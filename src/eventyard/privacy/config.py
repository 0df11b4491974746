"""Loading the privacy configuration of workspaces from the state store, compiled and cached.

Stages call :func:`snapshot` once per batch: it costs one read of the configuration version
and rebuilds only when the version changed (``eventyard apply``, the API), so a rule change
takes effect for the next batch in every process without a restart.
"""

from __future__ import annotations

import weakref

import msgspec

from eventyard.errors import ConfigError
from eventyard.privacy import consent, pii_rules
from eventyard.state.base import StateStore


async def load_consent(state: StateStore, workspace_id: str) -> consent.ConsentConfig:
    doc = await state.get_document(workspace_id, consent.DOC_KIND, consent.DOC_NAME)
    return consent.parse(doc.body) if doc is not None else consent.ConsentConfig()


async def load_pii(state: StateStore, workspace_id: str) -> pii_rules.PiiConfig | None:
    doc = await state.get_document(workspace_id, pii_rules.DOC_KIND, pii_rules.DOC_NAME)
    return pii_rules.parse(doc.body) if doc is not None else None


class Snapshot(msgspec.Struct):
    version: int
    #: source id -> workspace id
    workspace_of: dict[str, str]
    #: workspace id -> compiled PII rules (only workspaces that have rules)
    pii: dict[str, pii_rules.CompiledPii]
    #: workspace id -> consent configuration (only workspaces that have categories)
    consent: dict[str, consent.ConsentConfig]


_CACHE: weakref.WeakKeyDictionary[StateStore, Snapshot] = weakref.WeakKeyDictionary()


async def build(state: StateStore, version: int) -> Snapshot:
    workspace_of = {s.id: s.workspace_id for s in await state.list_sources()}
    dest_ids: dict[str, dict[str, str]] = {}
    for d in await state.list_destinations():
        dest_ids.setdefault(d.workspace_id, {})[d.name] = d.id
    pii: dict[str, pii_rules.CompiledPii] = {}
    for doc in await state.list_documents(None, pii_rules.DOC_KIND):
        if doc.name != pii_rules.DOC_NAME:
            continue
        try:
            compiled = pii_rules.compile_rules(pii_rules.parse(doc.body), dest_ids.get(doc.workspace_id, {}))
        except ConfigError as exc:  # stored by an older version with other rules: say so loudly
            raise ConfigError(f"the PII rules of workspace {doc.workspace_id} are invalid: {exc}") from None
        if compiled.active:
            pii[doc.workspace_id] = compiled
    consents: dict[str, consent.ConsentConfig] = {}
    for doc in await state.list_documents(None, consent.DOC_KIND):
        if doc.name == consent.DOC_NAME:
            parsed = consent.parse(doc.body)
            if parsed.categories:
                consents[doc.workspace_id] = parsed
    return Snapshot(version, workspace_of, pii, consents)


async def snapshot(state: StateStore) -> Snapshot:
    """The current privacy configuration of every workspace (cached per configuration version)."""
    version = await state.config_version()
    cached = _CACHE.get(state)
    if cached is not None and cached.version == version:
        return cached
    fresh = await build(state, version)
    _CACHE[state] = fresh
    return fresh


async def browser_consent_settings(state: StateStore) -> dict[str, dict[str, object]]:
    """Per source id, the ``consentSettings`` analytics.js reads from its CDN settings:
    ``allCategories`` (the workspace's category ids) and ``hasUnmappedDestinations`` (whether
    an enabled destination connected to the source is in no category, so it receives events
    whatever the user chose). Only sources of workspaces with categories are listed."""
    configs = {
        doc.workspace_id: consent.parse(doc.body)
        for doc in await state.list_documents(None, consent.DOC_KIND)
        if doc.name == consent.DOC_NAME
    }
    configs = {ws: c for ws, c in configs.items() if c.categories}
    if not configs:
        return {}
    dests = {d.id: d for d in await state.list_destinations()}
    connected: dict[str, list[str]] = {}
    for conn in await state.list_connections():
        connected.setdefault(conn.source_id, []).append(conn.destination_id)
    out: dict[str, dict[str, object]] = {}
    for source in await state.list_sources():
        config = configs.get(source.workspace_id)
        if config is None:
            continue
        unmapped = any(
            d in dests and dests[d].enabled and not config.categories_of(dests[d].name)
            for d in connected.get(source.id, [])
        )
        out[source.id] = {"allCategories": [c.id for c in config.categories], "hasUnmappedDestinations": unmapped}
    return out
