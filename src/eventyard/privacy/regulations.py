"""Regulations: what each type does, checking a request, and creating one.

A regulation names subjects (user ids, up to ``MAX_SUBJECTS``) and what to do with them:

==============================  =========  ======  =========================================
type                            suppress   delete  reaches
==============================  =========  ======  =========================================
``SUPPRESS_ONLY``               yes        no      collect (events refused) and unify
``UNSUPPRESS``                  lifts it   no      collect and unify
``SUPPRESS_WITH_DELETE``        yes        yes     every store and every destination
``DELETE_ONLY``                 no         yes     every store and every destination
``SUPPRESS_WITH_DELETE_INTERNAL`` yes      yes     eventyard's own stores only
``DELETE_INTERNAL``             no         yes     eventyard's own stores only
==============================  =========  ======  =========================================

eventyard's own stores are the ingest log and its queued delivery jobs (``log``), the identity
graph with profiles (``identity``), and the destinations that keep data on eventyard's side:
warehouses and files (``INTERNAL_DESTINATION_TYPES``). The other destinations (webhooks,
functions, ...) forward data to someone else; a full deletion asks them to delete too.

Each store gets a status in the regulation (``stores``): ``suppression`` (done when the
regulation is created, so collect refuses the subjects' events at once), ``log``,
``identity`` and ``destination:<id>`` (worked on by ``privacy.runner``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventyard.state.base import Regulation, StateStore

SUPPRESS_ONLY = "SUPPRESS_ONLY"
UNSUPPRESS = "UNSUPPRESS"
SUPPRESS_WITH_DELETE = "SUPPRESS_WITH_DELETE"
DELETE_ONLY = "DELETE_ONLY"
SUPPRESS_WITH_DELETE_INTERNAL = "SUPPRESS_WITH_DELETE_INTERNAL"
DELETE_INTERNAL = "DELETE_INTERNAL"

REGULATION_TYPES = (
    SUPPRESS_WITH_DELETE,
    DELETE_ONLY,
    SUPPRESS_ONLY,
    UNSUPPRESS,
    DELETE_INTERNAL,
    SUPPRESS_WITH_DELETE_INTERNAL,
)
SUPPRESSING = frozenset({SUPPRESS_ONLY, SUPPRESS_WITH_DELETE, SUPPRESS_WITH_DELETE_INTERNAL})
DELETING = frozenset({SUPPRESS_WITH_DELETE, DELETE_ONLY, SUPPRESS_WITH_DELETE_INTERNAL, DELETE_INTERNAL})
INTERNAL_ONLY = frozenset({SUPPRESS_WITH_DELETE_INTERNAL, DELETE_INTERNAL})

USER_ID = "USER_ID"
ANONYMOUS_ID = "ANONYMOUS_ID"
SUBJECT_TYPES = (USER_ID, ANONYMOUS_ID)
#: Subject ids one regulation may name (Segment's limit per call).
MAX_SUBJECTS = 5000
#: Longest subject id accepted (longer ones cannot be ids any SDK sends).
MAX_SUBJECT_CHARS = 1000

#: Destination types that keep data on eventyard's side (included in *_INTERNAL deletions).
INTERNAL_DESTINATION_TYPES = frozenset({"duckdb", "postgres", "file"})

SUPPRESSION_STORE = "suppression"
LOG_STORE = "log"
IDENTITY_STORE = "identity"
DESTINATION_PREFIX = "destination:"

#: Store statuses.
INITIALIZED = "INITIALIZED"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
NOT_SUPPORTED = "NOT_SUPPORTED"
OPEN = frozenset({INITIALIZED, RUNNING})


class RegulationError(ValueError):
    """A regulation request is not valid; ``field`` names the part that is wrong."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def check_request(regulation_type: Any, subject_type: Any, subject_ids: Any) -> tuple[str, str, list[str]]:
    """The checked ``(type, subject type, subject ids)``; ``RegulationError`` says what is wrong.

    Ids are kept in order with repeats removed; an id must be a non-empty string.
    """
    if not isinstance(regulation_type, str) or regulation_type.upper() not in REGULATION_TYPES:
        raise RegulationError(
            f"`regulationType` must be one of {', '.join(REGULATION_TYPES)} (got {regulation_type!r})",
            "regulationType",
        )
    regulation_type = regulation_type.upper()
    if not isinstance(subject_type, str) or subject_type.upper() not in SUBJECT_TYPES:
        raise RegulationError(
            f"`subjectType` must be one of {', '.join(SUBJECT_TYPES)} (got {subject_type!r})", "subjectType"
        )
    subject_type = subject_type.upper()
    if subject_type == ANONYMOUS_ID and regulation_type not in (SUPPRESS_ONLY, UNSUPPRESS):
        raise RegulationError(
            "`subjectType` ANONYMOUS_ID works with SUPPRESS_ONLY and UNSUPPRESS; delete by USER_ID "
            "(the user's anonymous ids known to the identity graph are deleted with it)",
            "subjectType",
        )
    if not isinstance(subject_ids, list) or not subject_ids:
        raise RegulationError("`subjectIds` must be a non-empty list of ids", "subjectIds")
    if len(subject_ids) > MAX_SUBJECTS:
        raise RegulationError(
            f"`subjectIds` holds {len(subject_ids)} ids; at most {MAX_SUBJECTS} per regulation, split the request",
            "subjectIds",
        )
    ids: dict[str, None] = {}
    for index, value in enumerate(subject_ids):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise RegulationError(f"`subjectIds[{index}]` must be a non-empty string (got {value!r})", "subjectIds")
        if len(value) > MAX_SUBJECT_CHARS:
            raise RegulationError(
                f"`subjectIds[{index}]` is {len(value)} characters; at most {MAX_SUBJECT_CHARS}", "subjectIds"
            )
        ids[value] = None
    return regulation_type, subject_type, list(ids)


async def plan_stores(
    state: StateStore,
    workspace_id: str,
    regulation_type: str,
    *,
    source_id: str = "",
    destination_ids: Sequence[str] | None = None,
) -> list[str]:
    """The stores a regulation of this type works on in this workspace.

    ``destination_ids`` narrows the destinations asked to delete (RudderStack's
    ``destinationIds``); a source-scoped regulation asks the destinations connected to that
    source. Unknown destination ids are a ``RegulationError``.
    """
    stores: list[str] = []
    if regulation_type in SUPPRESSING or regulation_type == UNSUPPRESS:
        stores.append(SUPPRESSION_STORE)
    if regulation_type not in DELETING:
        return stores
    stores += [LOG_STORE, IDENTITY_STORE]
    destinations = await state.list_destinations(workspace_id)
    if source_id:
        connected = {c.destination_id for c in await state.list_connections() if c.source_id == source_id}
        destinations = [d for d in destinations if d.id in connected]
    if destination_ids is not None:
        known = {d.id for d in destinations}
        unknown = [d for d in destination_ids if d not in known]
        if unknown:
            raise RegulationError(f"no destination {', '.join(map(repr, unknown))} in this workspace", "destinationIds")
        wanted = set(destination_ids)
        destinations = [d for d in destinations if d.id in wanted]
    if regulation_type in INTERNAL_ONLY:
        destinations = [d for d in destinations if d.type in INTERNAL_DESTINATION_TYPES]
    stores += [DESTINATION_PREFIX + d.id for d in destinations]
    return stores


async def create_regulation(
    state: StateStore,
    workspace_id: str,
    regulation_type: Any,
    subject_type: Any,
    subject_ids: Any,
    *,
    source_id: str = "",
    destination_ids: Sequence[str] | None = None,
) -> Regulation:
    """Check (``RegulationError``), store and start a regulation; a suppression takes effect
    before this returns.

    The deletion itself runs in the background (``privacy.runner``) in the process that runs
    the route role.
    """
    regulation_type, subject_type, subject_ids = check_request(regulation_type, subject_type, subject_ids)
    if source_id and source_id not in {s.id for s in await state.list_sources(workspace_id)}:
        raise RegulationError(f"no source {source_id!r} in this workspace", "sourceId")
    stores = await plan_stores(
        state, workspace_id, regulation_type, source_id=source_id, destination_ids=destination_ids
    )
    reg = await state.create_regulation(
        workspace_id, regulation_type, subject_type, subject_ids, stores=stores, source_id=source_id
    )
    if SUPPRESSION_STORE in reg.stores:
        reg = await apply_suppression(state, reg)
    return reg


async def apply_suppression(state: StateStore, reg: Regulation) -> Regulation:
    """Add (or, for UNSUPPRESS, remove) the regulation's subjects on the suppression list."""
    if reg.regulation_type == UNSUPPRESS:
        removed = await state.remove_suppressions(reg.workspace_id, reg.subject_type, reg.subject_ids)
        return await state.set_regulation_store(
            reg.id, SUPPRESSION_STORE, FINISHED, detail="suppression lifted", removed={"suppressions": removed}
        )
    added = await state.add_suppressions(reg.workspace_id, reg.subject_type, reg.subject_ids, reg.id)
    return await state.set_regulation_store(
        reg.id, SUPPRESSION_STORE, FINISHED, detail="events of these subjects are refused", removed={"added": added}
    )
