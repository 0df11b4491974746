"""Consent categories (workspace configuration) and the per-destination consent decision.

A workspace maps consent categories to destinations (document kind ``consent``, name
``categories``). An event carries the end user's choices in one of two shapes:

- Segment: ``context.consent.categoryPreferences = {"<category id>": true|false, ...}``. A
  destination mapped to categories receives the event only if every one of them is ``true``;
  a category the object does not mention counts as not consented (so an empty object blocks
  every mapped destination).
- RudderStack: ``context.consentManagement = {allowedConsentIds, deniedConsentIds, provider,
  resolutionStrategy}``. Only the denied ids decide (none denied: no filtering). With strategy
  ``and`` a destination is blocked when any of its categories is denied; with ``or`` only when
  all of them are. The strategy is the event's ``resolutionStrategy``, except for the
  ``custom`` provider, whose strategy is configured per destination (``strategies``); without
  either it is ``or`` for ``ketch`` and ``and`` otherwise.

Events without either object, and destinations in no category, are never held back.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventyard.errors import ConfigError

DOC_KIND = "consent"
DOC_NAME = "categories"
STRATEGIES = ("and", "or")
#: Segment: category ids are shorter than 35 characters.
MAX_ID_CHARS = 34
#: The reserved track event that records a user's consent choices on their profile.
PREFERENCE_EVENT = "Segment Consent Preference Updated"
#: The profile trait that holds them (``{category id: bool}``).
PROFILE_TRAIT = "consent_preferences"


def category_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid category id (Segment's rules), or ``None``."""
    if not isinstance(value, str) or not value:
        return "a category id must be a non-empty string"
    if len(value) > MAX_ID_CHARS:
        return f"category id {value!r} is {len(value)} characters; at most {MAX_ID_CHARS} are allowed"
    if value[0].isdigit():
        return f"category id {value!r} must not start with a digit"
    if value != value.strip() or any(c in value for c in "\r\n\t"):
        return f"category id {value!r} must not have leading or trailing spaces or control characters"
    return None


class ConsentCategory(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: The id events use in ``categoryPreferences`` / ``deniedConsentIds`` (case-sensitive).
    id: str
    #: Display name; defaults to the id.
    name: str = ""
    #: Names of the destinations that need this category's consent.
    destinations: list[str] = []

    def __post_init__(self) -> None:
        problem = category_id_problem(self.id)
        if problem:
            raise ValueError(problem)
        if len(set(self.destinations)) != len(self.destinations):
            raise ValueError(f"category {self.id!r} lists a destination twice")

    @property
    def display_name(self) -> str:
        return self.name or self.id


class ConsentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    categories: list[ConsentCategory] = []
    #: RudderStack ``custom`` provider: resolution strategy per destination name (default ``and``).
    strategies: dict[str, str] = {}

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for cat in self.categories:
            if cat.id in seen:
                raise ValueError(f"category {cat.id!r} is declared twice")
            seen.add(cat.id)
        for dest, strategy in self.strategies.items():
            if strategy not in STRATEGIES:
                raise ValueError(f"strategy of destination {dest!r} must be 'and' or 'or', not {strategy!r}")

    def categories_of(self, destination: str) -> tuple[str, ...]:
        """The category ids a destination (by name) needs, in declaration order."""
        return tuple(c.id for c in self.categories if destination in c.destinations)

    def referenced_destinations(self) -> set[str]:
        return {d for c in self.categories for d in c.destinations} | set(self.strategies)


def parse(body: Any) -> ConsentConfig:
    """A consent configuration from a document body, API body or file section."""
    try:
        return msgspec.convert(body, ConsentConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"consent: {exc}") from None


def to_body(config: ConsentConfig) -> dict[str, Any]:
    """The stored / shown form (display names filled in)."""
    out: dict[str, Any] = {
        "categories": [
            {"id": c.id, "name": c.display_name, "destinations": list(c.destinations)} for c in config.categories
        ]
    }
    if config.strategies:
        out["strategies"] = dict(config.strategies)
    return out


def unknown_destinations(config: ConsentConfig, known: set[str]) -> list[str]:
    return sorted(config.referenced_destinations() - known)


class DestinationConsent(msgspec.Struct, frozen=True):
    """What one destination needs: its categories and its ``custom``-provider strategy."""

    categories: tuple[str, ...]
    strategy: str = "and"


def compile_for(config: ConsentConfig, destination: str) -> DestinationConsent | None:
    """The destination's consent needs; ``None`` for a destination in no category."""
    cats = config.categories_of(destination)
    if not cats:
        return None
    return DestinationConsent(cats, config.strategies.get(destination, "and"))


def _strategy(managed: dict[str, Any], configured: str) -> str:
    provider = managed.get("provider")
    if provider == "custom":
        return configured
    sent = managed.get("resolutionStrategy")
    if sent in STRATEGIES:
        return str(sent)
    return "or" if provider == "ketch" else "and"


def blocked_by(event: dict[str, Any], needs: DestinationConsent) -> str | None:
    """Why the end user's consent keeps ``event`` from a destination with ``needs``, or ``None``.

    Runs for every event and every destination in a category: the common cases (no consent
    object, every category consented) take a few dictionary lookups and no allocation.
    """
    context = event.get("context")
    if context.__class__ is not dict:
        return None
    consent = context.get("consent")
    if consent is not None and consent.__class__ is dict:
        prefs = consent.get("categoryPreferences")
        if prefs.__class__ is dict:
            for cat in needs.categories:
                if prefs.get(cat) is not True:
                    missing = [c for c in needs.categories if prefs.get(c) is not True]
                    return "no end-user consent for " + ", ".join(missing) + " (context.consent.categoryPreferences)"
    managed = context.get("consentManagement")
    if managed is not None and managed.__class__ is dict:
        denied_raw = managed.get("deniedConsentIds")
        if denied_raw.__class__ is list and denied_raw:
            denied = {d for d in denied_raw if isinstance(d, str) and d}
            hit = [c for c in needs.categories if c in denied]
            if hit:
                strategy = _strategy(managed, needs.strategy)
                if strategy == "and" or len(hit) == len(needs.categories):
                    return "end user denied " + ", ".join(hit) + f" (context.consentManagement, strategy {strategy})"
    return None


def preferences_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """``context.consent.categoryPreferences`` when it is an object."""
    context = event.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    return prefs if isinstance(prefs, dict) else None
