"""Identity rules as code: the ``identity_rules`` section of a workspace in ``workspace.yaml``.

.. code-block:: yaml

    workspaces:
      - name: default
        identity_rules:              # the document of `eventyard profile rules` / PUT /api/v1/identity/rules
          identifiers:
            - {type: user_id, limit: 1, period: ever}
            - {type: email, limit: 5, period: weekly}
          blocked_values: ["-1", "null", "anonymous", "test@example.com"]

The section is validated exactly as ``PUT /api/v1/identity/rules`` validates its body
(``rules_of``; keys left out take the defaults). ``eventyard apply`` shows it as a change when
the stored rules differ and sets them; a workspace without the section keeps its rules.
``eventyard export`` writes the section for every workspace whose rules were set.

``workspace_file`` and ``workspace_apply`` call in here with one line each; the identity
store is opened by the caller (``opened``) because rules live there, not in the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventyard.errors import ConfigError
from eventyard.runtime.components import make_identity_store
from eventyard.runtime.settings import Settings
from eventyard.state.base import StateStore
from eventyard.state.identity_base import GraphTx
from eventyard.unify.identity_rules import IdentityRules, parse_rules, rules_from_json
from eventyard.unify.identity_service import IdentityService

if TYPE_CHECKING:
    from eventyard.control.workspace_apply import Change
    from eventyard.control.workspace_file import WorkspaceDecl, WorkspaceFile

#: The key of the section in a workspace of ``workspace.yaml``.
SECTION = "identity_rules"


def rules_of(data: Any) -> IdentityRules:
    """The rules of a decoded JSON/YAML document; ``ValueError`` saying what is wrong."""
    if data is not None and not isinstance(data, dict):
        raise ValueError("the identity rules must be a mapping (the document of `eventyard profile rules`)")
    return parse_rules(data)


def check(index: int, ws: WorkspaceDecl) -> tuple[str, str] | None:
    """``(path, message)`` of a problem in workspace ``index``'s section, or ``None``."""
    if ws.identity_rules is None:
        return None
    at = f"$.workspaces[{index}].{SECTION}"
    try:
        rules_of(ws.identity_rules)
    except ValueError as exc:
        message, _, rest = str(exc).rpartition(" - at `")
        inner = rest.rstrip("`")[1:] if message else ""
        return f"{at}{inner}", f"identity rules: {message or exc}"
    return None


def _declared(desired: WorkspaceFile) -> list[tuple[str, IdentityRules]]:
    return [(ws.name, rules_of(ws.identity_rules)) for ws in desired.workspaces if ws.identity_rules is not None]


def needs_identity(desired: WorkspaceFile) -> bool:
    return any(ws.identity_rules is not None for ws in desired.workspaces)


async def _stored(identity: IdentityService, workspace_id: str) -> IdentityRules | None:
    def q(tx: GraphTx) -> bytes | None:
        return tx.get_rules(workspace_id)

    raw = await identity.store.read(q)
    return None if raw is None else rules_from_json(raw)


def _differences(old: IdentityRules, new: IdentityRules) -> list[str]:
    before, after = old.to_builtins(), new.to_builtins()
    return [f"{key} changed" for key in after if before.get(key) != after[key]]


def _require(identity: IdentityService | None) -> IdentityService:
    if identity is None:
        raise ConfigError("the file declares identity_rules, but the identity store was not opened to apply them")
    return identity


async def plan(state: StateStore, identity: IdentityService | None, desired: WorkspaceFile) -> list[Change]:
    """The identity-rule changes the file asks for."""
    from eventyard.control.workspace_apply import Change

    changes: list[Change] = []
    declared = _declared(desired)
    if not declared:
        return changes
    service = _require(identity)
    for name, rules in declared:
        current = await state.workspace_by_name(name)
        old = await _stored(service, current.id) if current is not None else None
        if old is None:
            changes.append(Change("create", "identity rules", name))
        elif details := _differences(old, rules):
            changes.append(Change("update", "identity rules", name, details))
    return changes


async def apply(state: StateStore, identity: IdentityService | None, desired: WorkspaceFile) -> None:
    """Set the declared rules (after the workspaces exist); unchanged rules are not rewritten."""
    declared = _declared(desired)
    if not declared:
        return
    service = _require(identity)
    for name, rules in declared:
        current = await state.workspace_by_name(name)
        if current is None:
            raise ConfigError(f"workspace {name!r} does not exist; apply it first")
        if await _stored(service, current.id) != rules:
            await service.set_rules(current.id, rules)


async def exported(identity: IdentityService | None, workspace_id: str) -> dict[str, Any]:
    """``{"identity_rules": {...}}`` when the workspace's rules were set, else ``{}``."""
    if identity is None:
        return {}
    stored = await _stored(identity, workspace_id)
    return {} if stored is None else {SECTION: stored.to_builtins()}


async def opened(settings: Settings, state: StateStore, desired: WorkspaceFile | None = None) -> IdentityService | None:
    """A started identity service when ``desired`` declares identity rules (always when
    ``desired`` is ``None``: an export reads them back); close it with ``close()``."""
    if desired is not None and not needs_identity(desired):
        return None
    service = IdentityService(make_identity_store(settings), state)
    await service.start()
    return service
