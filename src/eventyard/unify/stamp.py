"""Where a resolved event carries its profile: ``context.eventyard.profileId`` (and
``context.eventyard.accountId`` for a group call's account profile).

Inside ``context`` because every destination receives the context as it is, and the
warehouse flattens it into the column ``context_eventyard_profile_id`` of every table
(top-level fields other than Segment's are not loaded). The stamp is the profile at the time
the event was resolved; a later merge does not rewrite it, so joins go through the merges
(``from_profile`` -> ``into_profile``) to the current profile.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "eventyard"
PROFILE_ID = "profileId"
ACCOUNT_ID = "accountId"


def stamp(event: dict[str, Any], profile_id: str | None, account_id: str | None) -> None:
    if profile_id is None and account_id is None:
        return
    context = event.get("context")
    if not isinstance(context, dict):
        context = event["context"] = {}
    ours = context.get(NAMESPACE)
    if not isinstance(ours, dict):
        ours = context[NAMESPACE] = {}
    if profile_id is not None:
        ours[PROFILE_ID] = profile_id
    if account_id is not None:
        ours[ACCOUNT_ID] = account_id


def stamped(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(profile id, account id) an event was stamped with."""
    context = event.get("context")
    ours = context.get(NAMESPACE) if isinstance(context, dict) else None
    if not isinstance(ours, dict):
        return None, None
    profile, account = ours.get(PROFILE_ID), ours.get(ACCOUNT_ID)
    return (profile if isinstance(profile, str) else None, account if isinstance(account, str) else None)
