"""The decision for one event under its source's tracking plan: keep, omit fields, or block.

Pure (no I/O): the stage (``unify.tracking_plan``) calls ``enforce`` per event. The order:

1. find the event's rule (track: by event name and ``context.protocols.event_version``; page
   and screen: by name, else the type's rule without a key; identify, group: the type's
   rule); a track event without one is *unplanned* (blocked when the source says so);
2. validate the event against the rule merged with the plan's COMMON rule (one call);
3. list top-level properties (track, page, screen) or traits (identify, group) the rule
   does not plan;
4. apply the source's settings: block on violations, or omit the offending or unplanned
   fields and record them in ``context.protocols``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from eventyard.quality.plan_format import Enforcement
from eventyard.unify.plan_compile import INVALID, PASS, UNPLANNED, CompiledPlan, CompiledRule, Violation

REASON_UNPLANNED = "tracking_plan_unplanned"
REASON_VIOLATION = "tracking_plan_violation"

#: event type -> (setting for unplanned fields, setting for violations)
_SETTINGS = {
    "track": ("track_unplanned_properties", "track_violations"),
    "identify": ("identify_unplanned_traits", "identify_violations"),
    "group": ("group_unplanned_traits", "group_violations"),
}


@dataclass
class SourcePlan:
    """A source's plan, compiled, with its settings (built by ``unify.plan_table``)."""

    source_id: str
    source_name: str
    workspace_id: str
    compiled: CompiledPlan
    enforcement: Enforcement
    #: Source id blocked events go to, and the one violation reports go to (``None``: none).
    quarantine: str | None = None
    violations_to: str | None = None

    @property
    def plan_name(self) -> str:
        return self.compiled.plan.name


class Decision(msgspec.Struct):
    #: ``""`` (keep) or the reason code the event is blocked with.
    blocked: str = ""
    detail: str = ""
    violations: list[Violation] = []
    omitted: list[str] = []
    omitted_on_violation: list[str] = []


def event_key(event: dict[str, Any]) -> str:
    kind = event.get("type")
    if kind == "track":
        return str(event.get("event") or "")
    if kind in ("page", "screen"):
        return str(event.get("name") or "")
    return ""


def _wanted_version(event: dict[str, Any]) -> Any:
    context = event.get("context")
    protocols = context.get("protocols") if isinstance(context, dict) else None
    return protocols.get("event_version") if isinstance(protocols, dict) else None


#: The answer for a valid event with nothing unplanned (shared: never changed).
KEEP = Decision()


def enforce(sp: SourcePlan, event: dict[str, Any]) -> Decision:
    """Decide for ``event`` (changed in place when fields are omitted); see the module docstring.

    Most events are valid and fully planned: they cost a dict lookup, one validator call and
    a subset test of their keys, and get the shared ``KEEP``.
    """
    kind = event.get("type")
    key = event.get("event") if kind == "track" else event.get("name") if kind in ("page", "screen") else ""
    if not isinstance(key, str):
        key = str(key or "")
    context = event.get("context")
    wanted = _wanted_version(event) if context and "protocols" in context else None
    plan = sp.compiled
    rule = plan.default.get((kind, key)) if wanted is None else None  # type: ignore[arg-type]
    if rule is None:
        rule = plan.rule_for(str(kind or ""), key, wanted)
    verdict = rule.passes(event) if rule is not None else INVALID
    if verdict == PASS:
        return KEEP
    return _decide(sp, event, str(kind or ""), key, rule, verdict == UNPLANNED)


def _decide(
    sp: SourcePlan, event: dict[str, Any], kind: str, key: str, rule: CompiledRule | None, valid: bool
) -> Decision:
    plan = sp.compiled
    violations: list[Violation] = []
    if rule is None:
        if kind == "track":
            violations.append(Violation("event", "Unplanned", f"track event {key!r} is not in the plan"))
            if sp.enforcement.track_unplanned_events == "block":
                detail = f"track event {key!r} is not in tracking plan {plan.plan.name!r} (v{plan.version})"
                return Decision(REASON_UNPLANNED, detail, violations)
        rule = plan.common
    invalid = [] if valid else rule.check(event)
    violations += invalid
    unplanned = rule.unplanned(event)
    violations += [rule.unplanned_violation(k) for k in unplanned]
    names = _SETTINGS.get(kind)
    if names is None:  # page, screen, alias: violations are recorded, never acted on
        return Decision(violations=violations)
    on_unplanned, on_violation = (getattr(sp.enforcement, n) for n in names)
    if invalid and on_violation == "block":
        shown = "; ".join(v.description for v in invalid[:5]) + ("; ..." if len(invalid) > 5 else "")
        detail = f"violates tracking plan {plan.plan.name!r} (v{plan.version}): {shown}"
        return Decision(REASON_VIOLATION, detail, violations)
    decision = Decision(violations=violations)
    drop: dict[str, set[str]] = {}
    if unplanned and on_unplanned == "omit":
        decision.omitted = list(unplanned)
        drop.setdefault(rule.section, set()).update(unplanned)
    if invalid and on_violation == "omit":
        for v in invalid:
            if v.omit is not None and v.omit[0] in ("properties", "traits"):
                drop.setdefault(v.omit[0], set()).add(v.omit[1])
                if v.omit[1] not in decision.omitted_on_violation:
                    decision.omitted_on_violation.append(v.omit[1])
    if drop:
        _omit(event, drop, sp.source_id, decision)
    return decision


def _omit(event: dict[str, Any], drop: dict[str, set[str]], source_id: str, decision: Decision) -> None:
    for section, keys in drop.items():
        values = event.get(section)
        if isinstance(values, dict):
            event[section] = {k: v for k, v in values.items() if k not in keys}
    context = event.get("context")
    context = dict(context) if isinstance(context, dict) else {}
    protocols = context.get("protocols")
    protocols = dict(protocols) if isinstance(protocols, dict) else {}
    protocols["sourceId"] = source_id
    if decision.omitted:
        protocols["omitted"] = decision.omitted
    if decision.omitted_on_violation:
        protocols["omitted_on_violation"] = decision.omitted_on_violation
    context["protocols"] = protocols
    event["context"] = context
