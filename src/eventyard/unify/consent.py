"""Stage: the reserved track event "Segment Consent Preference Updated" records the end
user's consent choices on their profile.

Such an event must carry ``context.consent.categoryPreferences`` (an object); without it the
event is dropped with reason ``consent_preferences_missing`` (Segment does not ingest it
either). With it, the choices become the profile trait ``consent_preferences``
(``{category id: bool}``; every category of the workspace the event does not mention is
``false``, as enforcement treats it). The trait is written into the event's
``context.traits``, which the profiles stage merges like any other trait (last write wins by
event time), so this stage needs nothing from the identity code; destinations receive the
trait with the event.
"""

from __future__ import annotations

from typing import Any

from eventyard.privacy import config
from eventyard.privacy.consent import PREFERENCE_EVENT, PROFILE_TRAIT, preferences_of
from eventyard.spec.pipeline import Dropped, PipelineEvent, StageResult
from eventyard.unify.context import StageContext

REASON = "consent_preferences_missing"
DETAIL = f"a {PREFERENCE_EVENT!r} event must carry context.consent.categoryPreferences (an object)"


def _is_preference_event(event: dict[str, Any]) -> bool:
    return event.get("event") == PREFERENCE_EVENT and event.get("type") == "track"


async def run(batch: list[PipelineEvent], ctx: StageContext) -> StageResult:
    for item in batch:  # the common case: no such event in the batch, one lookup per event
        if item.event.get("event") == PREFERENCE_EVENT:
            break
    else:
        return StageResult(batch)
    snap = await config.snapshot(ctx.state)
    kept: list[PipelineEvent] = []
    dropped: list[Dropped] = []
    for item in batch:
        event = item.event
        if not _is_preference_event(event):
            kept.append(item)
            continue
        prefs = preferences_of(event)
        if prefs is None:
            dropped.append(Dropped(item, REASON, DETAIL))
            continue
        values = {str(k): v is True for k, v in prefs.items()}
        workspace = snap.workspace_of.get(item.source_id)
        categories = snap.consent.get(workspace) if workspace is not None else None
        if categories is not None:
            for cat in categories.categories:
                values.setdefault(cat.id, False)
        context = event.get("context")
        if not isinstance(context, dict):  # cannot happen: preferences_of found it
            context = event["context"] = {}
        traits = context.get("traits")
        context["traits"] = {**(traits if isinstance(traits, dict) else {}), PROFILE_TRAIT: values}
        kept.append(item)
    return StageResult(kept, dropped)
