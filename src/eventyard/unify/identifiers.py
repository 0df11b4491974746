"""The identifiers one event carries, as ``type:value`` keys in priority order.

Where they come from (users collection):

==================  ===========================================================================
type                source
==================  ===========================================================================
``user_id``         ``userId`` (alias: also ``previousId`` when the graph knows it as a user_id)
``anonymous_id``    ``anonymousId`` (alias: ``previousId`` otherwise)
``email``           ``traits.email`` of identify calls, ``context.traits.email`` of any call;
                    trimmed and lower-cased
``phone``           ``traits.phone`` / ``context.traits.phone``
``<os>.id``         ``context.device.id``; ``<os>`` is ``ios`` or ``android`` from
                    ``context.device.type`` (else ``context.os.name``), otherwise ``device``
``<os>.idfa``       ``context.device.advertisingId``
``<os>.push_token`` ``context.device.token``
any custom type     ``context.externalIds: [{id, type, collection}]`` (collection ``users``)
merge properties    RudderStack's ``mergeProperties: [{type, value}, ...]``
==================  ===========================================================================

Accounts collection: ``group_id`` from a group call's ``groupId`` and ``context.externalIds``
with ``collection: "accounts"``. Values blocked by the rules are set aside with the reason, so
they are counted and explained instead of vanishing.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventyard.unify.identity_rules import ACCOUNTS, USERS, IdentityRules

BLOCKED = "blocked_value"

#: RudderStack merge property types -> identifier types.
_MERGE_TYPES = {
    "userid": "user_id",
    "user_id": "user_id",
    "anonymousid": "anonymous_id",
    "anonymous_id": "anonymous_id",
}


class Extracted(msgspec.Struct):
    """What an event says about who it is (a Struct: made once per event, about twice as fast
    to create as a dataclass with list defaults)."""

    #: Identifier keys of the user profile, highest priority first.
    users: list[str] = []
    #: Identifier keys of the account profile (group calls), highest priority first.
    accounts: list[str] = []
    #: An alias call's ``previousId``: a user_id if the graph knows it as one, else an anonymous_id.
    previous_id: str | None = None
    #: ``(key, reason)`` of values that were not accepted as identifiers.
    blocked: list[tuple[str, str]] = []


def key(type_: str, value: str) -> str:
    return f"{type_}:{value}"


def split_key(identifier: str) -> tuple[str, str]:
    """``"email:a@b.c"`` -> ``("email", "a@b.c")``; the type never contains ``:``."""
    type_, _, value = identifier.partition(":")
    return type_, value


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return None


def _device_prefix(context: dict[str, Any], device: dict[str, Any]) -> str:
    kind = device.get("type")
    if isinstance(kind, str) and kind.lower() in ("ios", "android"):
        return kind.lower()
    os_ = context.get("os")
    name = os_.get("name") if isinstance(os_, dict) else None
    if isinstance(name, str):
        lowered = name.lower()
        if "android" in lowered:
            return "android"
        if "ios" in lowered or "iphone" in lowered or "ipad" in lowered:
            return "ios"
    return "device"


class _Collector:
    """Collects keys with their rank; written for speed (it runs for every event)."""

    def __init__(self, rules: IdentityRules) -> None:
        self.rules = rules
        self.out = Extracted()
        self._ranked: dict[str, list[tuple[int, int, str]]] = {USERS: [], ACCOUNTS: []}
        self._seen: set[tuple[str, str]] = set()
        self._order = 0

    def add(self, collection: str, type_: str, raw: Any, external: bool = False) -> None:
        value = raw.strip() if isinstance(raw, str) else _text(raw)
        if value is None:
            return
        rules = self.rules
        entry = rules.table(collection).get(type_)
        if entry is None:
            if not rules.accepts(collection, type_, external):
                return
            priority = rules.rule_of(collection, type_)[0]
        else:
            priority = entry[0]
        if type_ == "email":
            value = value.lower()
        k = type_ + ":" + value
        seen = (collection, k)
        if seen in self._seen:
            return
        self._seen.add(seen)
        if rules.blocked(value):
            self.out.blocked.append((k, BLOCKED))
            return
        self._ranked[collection].append((priority, self._order, k))
        self._order += 1

    def done(self) -> Extracted:
        users = self._ranked[USERS]
        if users:
            users.sort()
            self.out.users = [k for _, _, k in users]
        accounts = self._ranked[ACCOUNTS]
        if accounts:
            accounts.sort()
            self.out.accounts = [k for _, _, k in accounts]
        return self.out


_PLAIN_TYPES = frozenset({"track", "page", "screen", "identify"})


def _plain(event: dict[str, Any], rules: IdentityRules) -> Extracted:
    """``extract`` for the common event that can only carry userId and anonymousId."""
    out = Extracted()
    table = rules.table(USERS)
    ranked: list[tuple[int, str]] = []
    for type_, raw in (("user_id", event.get("userId")), ("anonymous_id", event.get("anonymousId"))):
        if raw is None:
            continue
        entry = table.get(type_)
        value = raw.strip() if isinstance(raw, str) else _text(raw)
        if entry is None or value is None:
            continue
        k = type_ + ":" + value
        if rules.blocked(value):
            out.blocked.append((k, BLOCKED))
        else:
            ranked.append((entry[0], k))
    if len(ranked) == 2 and ranked[1][0] < ranked[0][0]:
        ranked.reverse()
    out.users = [k for _, k in ranked]
    return out


def extract(event: dict[str, Any], rules: IdentityRules) -> Extracted:
    """The identifiers of a normalized event under ``rules``."""
    kind = event.get("type")
    context = event.get("context")
    if (
        kind in _PLAIN_TYPES
        and isinstance(context, dict)
        and "traits" not in context
        and "device" not in context
        and "externalIds" not in context
        and (kind != "identify" or not event.get("traits"))
    ):
        return _plain(event, rules)
    c = _Collector(rules)
    c.add(USERS, "user_id", event.get("userId"))
    if kind == "alias":
        previous = _text(event.get("previousId"))
        if previous is not None:
            if rules.blocked(previous):
                c.out.blocked.append((key("previous_id", previous), BLOCKED))
            else:
                c.out.previous_id = previous
    c.add(USERS, "anonymous_id", event.get("anonymousId"))
    if not isinstance(context, dict):
        context = {}
    traits = event.get("traits") if kind == "identify" else None
    context_traits = context.get("traits")
    for source in (traits, context_traits):
        if isinstance(source, dict):
            c.add(USERS, "email", source.get("email"))
            c.add(USERS, "phone", source.get("phone"))
    device = context.get("device")
    if isinstance(device, dict):
        prefix = _device_prefix(context, device)
        c.add(USERS, f"{prefix}.id", device.get("id"))
        c.add(USERS, f"{prefix}.idfa", device.get("advertisingId"))
        c.add(USERS, f"{prefix}.push_token", device.get("token"))
    external_ids = context.get("externalIds")
    if isinstance(external_ids, list):
        for item in external_ids:
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                continue
            collection = item.get("collection") or USERS
            if collection not in (USERS, ACCOUNTS) or (collection == ACCOUNTS and kind != "group"):
                continue
            c.add(collection, item["type"].strip().lower(), item.get("id"), external=True)
    if kind == "group":
        c.add(ACCOUNTS, "group_id", event.get("groupId"))
    if kind == "merge":
        props = event.get("mergeProperties")
        if isinstance(props, list):
            for prop in props:
                if isinstance(prop, dict) and isinstance(prop.get("type"), str):
                    raw_type = prop["type"].strip()
                    type_ = _MERGE_TYPES.get(raw_type.lower(), raw_type.lower())
                    c.add(USERS, type_, prop.get("value"), external=True)
    return c.done()
