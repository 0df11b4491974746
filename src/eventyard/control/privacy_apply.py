"""Consent categories and PII rules in ``workspace.yaml``: check, diff, apply, export.

.. code-block:: yaml

    workspaces:
      - name: default
        consent:
          categories:
            - {id: Advertising, name: Advertising, destinations: [ads]}
          strategies: {ads: or}        # RudderStack "custom" provider, per destination
        pii:
          detect: true
          rules:
            - {path: properties.email, kind: email, action: hash, destinations: {warehouse: allow}}

A section the file leaves out is left as it is (``apply`` never deletes); a section that is
present replaces the stored document (a new version; nothing changes when equal). Destinations
are named as in the file's ``destinations``.
"""

from __future__ import annotations

from typing import Any

from eventyard.privacy import consent, pii_rules
from eventyard.state.base import StateStore, Workspace


def check(w: int, ws: Any) -> tuple[str, str] | None:
    """References of the consent and PII sections to destinations the file does not declare."""
    declared = {d.name for d in ws.destinations}
    if ws.consent is not None:
        missing = consent.unknown_destinations(ws.consent, declared)
        if missing:
            return (
                f"$.workspaces[{w}].consent",
                f"no destination {missing[0]!r} is declared in workspace {ws.name!r}",
            )
    if ws.pii is not None:
        missing = pii_rules.unknown_destinations(ws.pii, declared)
        if missing:
            return f"$.workspaces[{w}].pii", f"no destination {missing[0]!r} is declared in workspace {ws.name!r}"
    return None


def _sections(ws: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, document kind, document name, body) of the sections the file has."""
    out = []
    if ws.consent is not None:
        out.append(("consent categories", consent.DOC_KIND, consent.DOC_NAME, consent.to_body(ws.consent)))
    if ws.pii is not None:
        out.append(("pii rules", pii_rules.DOC_KIND, pii_rules.DOC_NAME, pii_rules.to_body(ws.pii)))
    return out


async def changes(state: StateStore, current: Workspace | None, ws: Any) -> list[tuple[str, str, str, list[str]]]:
    """(action, kind, name, details) of what ``apply`` would change."""
    out: list[tuple[str, str, str, list[str]]] = []
    for label, kind, name, body in _sections(ws):
        doc = await state.get_document(current.id, kind, name) if current else None
        if doc is None:
            out.append(("create", label, ws.name, []))
        elif doc.body != body:
            out.append(("update", label, ws.name, [f"version {doc.version} -> {doc.version + 1}"]))
    return out


async def apply(state: StateStore, current: Workspace, ws: Any) -> None:
    for _label, kind, name, body in _sections(ws):
        await state.put_document(current.id, kind, name, body, actor="cli")


async def export(state: StateStore, ws: Workspace, doc: dict[str, Any]) -> None:
    """Add the workspace's consent and PII sections to its exported entry ``doc``."""
    found = await state.get_document(ws.id, consent.DOC_KIND, consent.DOC_NAME)
    if found is not None and found.body.get("categories"):
        doc["consent"] = found.body
    rules = await state.get_document(ws.id, pii_rules.DOC_KIND, pii_rules.DOC_NAME)
    if rules is not None:
        doc["pii"] = rules.body
