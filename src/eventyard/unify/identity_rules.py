"""Identity resolution rules of one workspace: which identifiers count, in what priority, how
many of each a profile may hold, which values are never identifiers, and the caps.

The defaults follow Segment's identity resolution settings: ``user_id`` first and at most one
per profile; ``email`` second; every other type after them in alphabetical order with at most
five per week; blocked values ``^[0-]*$``, ``-1``, ``null``, ``anonymous``, ``undefined`` (and
empty); at most 100 merges and 1,000 identifiers per profile.

Rules are stored as JSON in the identity store (``IdentityRules.to_json``) and edited with
``eventyard profile rules`` or ``PUT /api/v1/identity/rules``.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

import msgspec

USERS = "users"
ACCOUNTS = "accounts"
COLLECTIONS = (USERS, ACCOUNTS)

#: An identifier type: lower-case letters, digits, ``_ . -``; no ``:`` (``type:value`` keys).
TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")

_PERIODS = {"daily": 1.0, "weekly": 7.0, "monthly": 30.0, "yearly": 365.0}
_DAYS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:d|days?)$")
DAY = 86400.0


def period_seconds(period: str) -> float | None:
    """Seconds of a limit period; ``None`` for ``ever``. Raises ``ValueError`` when unknown."""
    text = period.strip().lower()
    if text == "ever":
        return None
    if text in _PERIODS:
        return _PERIODS[text] * DAY
    match = _DAYS.match(text)
    if match and float(match.group(1)) > 0:
        return float(match.group(1)) * DAY
    raise ValueError(f"period {period!r} is not one of ever, daily, weekly, monthly, yearly or `<n> days`")


class IdentifierRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One identifier type. Its place in ``IdentityRules.identifiers`` is its priority."""

    type: str
    #: How many values of this type one profile may hold within ``period``.
    limit: int = 5
    #: ``ever``, ``daily``, ``weekly``, ``monthly``, ``yearly`` or ``<n> days``.
    period: str = "weekly"
    #: A disabled type is ignored on incoming events (it neither matches nor is added).
    enabled: bool = True

    def __post_init__(self) -> None:
        if not TYPE_PATTERN.match(self.type):
            raise ValueError(f"identifier type {self.type!r} must be lower-case letters, digits, `_ . -` (no `:`)")
        if self.limit < 1:
            raise ValueError(f"`limit` of {self.type} must be at least 1")
        period_seconds(self.period)


def _default_identifiers() -> list[IdentifierRule]:
    others = sorted(
        [
            "android.id",
            "android.idfa",
            "android.push_token",
            "anonymous_id",
            "braze_id",
            "cross_domain_id",
            "device.id",
            "device.idfa",
            "device.push_token",
            "ga_client_id",
            "ios.id",
            "ios.idfa",
            "ios.push_token",
            "phone",
        ]
    )
    return [
        IdentifierRule("user_id", limit=1, period="ever"),
        IdentifierRule("email", limit=5, period="weekly"),
        *(IdentifierRule(t) for t in others),
    ]


def _default_account_identifiers() -> list[IdentifierRule]:
    return [IdentifierRule("group_id", limit=1, period="ever")]


class IdentityRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, dict=True):
    """The identity resolution settings of one workspace."""

    #: Identifier types of user profiles, highest priority first.
    identifiers: list[IdentifierRule] = msgspec.field(default_factory=_default_identifiers)
    #: Identifier types of account (group) profiles, highest priority first.
    account_identifiers: list[IdentifierRule] = msgspec.field(default_factory=_default_account_identifiers)
    #: Accept ``context.externalIds`` of types not listed above (placed after every listed type).
    accept_unlisted_external_ids: bool = True
    #: Limit and period of such unlisted types.
    unlisted_limit: int = 5
    unlisted_period: str = "weekly"
    #: Values that are never identifiers, compared case-insensitively after trimming spaces.
    blocked_values: list[str] = msgspec.field(default_factory=lambda: ["-1", "null", "anonymous", "undefined"])
    #: Regular expressions; a value matching one in full is never an identifier.
    blocked_patterns: list[str] = msgspec.field(default_factory=lambda: ["^[0-]*$"])
    #: Most merges one profile may absorb, and most identifiers it may hold.
    max_merges: int = 100
    max_identifiers: int = 1000
    #: Identify (and group) calls with more traits than this do not change profile traits.
    max_traits: int = 300

    def __post_init__(self) -> None:
        for name, rules in (("identifiers", self.identifiers), ("account_identifiers", self.account_identifiers)):
            seen: set[str] = set()
            for rule in rules:
                if rule.type in seen:
                    raise ValueError(f"identifier type {rule.type!r} is listed twice in `{name}`")
                seen.add(rule.type)
        if self.unlisted_limit < 1:
            raise ValueError("`unlisted_limit` must be at least 1")
        period_seconds(self.unlisted_period)
        for pattern in self.blocked_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked pattern {pattern!r} is not a regular expression: {exc}") from None
        for name in ("max_merges", "max_identifiers", "max_traits"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1")

    # ------------------------------------------------------------------ lookups

    @cached_property
    def _blocked_exact(self) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in self.blocked_values) | {""}

    @cached_property
    def _blocked_regex(self) -> re.Pattern[str] | None:
        if not self.blocked_patterns:
            return None
        return re.compile("|".join(f"(?:{p})" for p in self.blocked_patterns))

    @cached_property
    def _tables(self) -> dict[str, dict[str, tuple[int, int, float | None]]]:
        """collection -> type -> (priority, limit, period seconds) of enabled types."""
        out: dict[str, dict[str, tuple[int, int, float | None]]] = {}
        for collection, rules in ((USERS, self.identifiers), (ACCOUNTS, self.account_identifiers)):
            out[collection] = {r.type: (i, r.limit, period_seconds(r.period)) for i, r in enumerate(rules) if r.enabled}
        return out

    @cached_property
    def _disabled(self) -> dict[str, frozenset[str]]:
        return {
            USERS: frozenset(r.type for r in self.identifiers if not r.enabled),
            ACCOUNTS: frozenset(r.type for r in self.account_identifiers if not r.enabled),
        }

    def blocked(self, value: str) -> bool:
        """Whether ``value`` may never be an identifier."""
        text = value.strip()
        if text.lower() in self._blocked_exact:
            return True
        regex = self._blocked_regex
        return regex is not None and regex.fullmatch(text) is not None

    def table(self, collection: str) -> dict[str, tuple[int, int, float | None]]:
        """type -> (priority, limit, period seconds) of the listed, enabled types."""
        return self._tables[collection]

    def accepts(self, collection: str, type_: str, external: bool = False) -> bool:
        """Whether identifiers of ``type_`` count: listed and enabled, or an accepted unlisted
        external id."""
        if type_ in self._tables[collection]:
            return True
        if type_ in self._disabled[collection]:
            return False
        return external and self.accept_unlisted_external_ids and TYPE_PATTERN.match(type_) is not None

    def rule_of(self, collection: str, type_: str) -> tuple[int, int, float | None]:
        """(priority, limit, period seconds) of a type; unlisted types rank after every listed one."""
        found = self._tables[collection].get(type_)
        if found is not None:
            return found
        return (1_000_000, self.unlisted_limit, period_seconds(self.unlisted_period))

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def to_builtins(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def parse_rules(data: Any) -> IdentityRules:
    """Rules from decoded JSON/YAML; missing keys take the defaults. ``ValueError`` when invalid."""
    if data is None:
        return IdentityRules()
    try:
        return msgspec.convert(data, IdentityRules)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def rules_from_json(raw: bytes | None) -> IdentityRules:
    if not raw:
        return IdentityRules()
    return parse_rules(msgspec.json.decode(raw))
