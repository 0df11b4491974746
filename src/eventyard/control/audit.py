"""What the audit trail records: one table from (method, path) to an action name.

Every request of the control app is matched against :data:`RULES` (first match wins). A
matching request is recorded by :mod:`eventyard.control.audit_middleware` as one
:class:`~eventyard.state.base.AuditEntry`: the action (``<thing>.<verb>``), the target (a
template over the path parameters, some query parameters and some body fields), and a short
detail. A rule names exactly which body fields and query parameters reach the detail; nothing
else of a request body is ever recorded (secrets and personal data beyond the target stay out).

Two kinds of rule:

- ``CHANGE``: a control-plane change. Besides the explicit rules, every POST, PUT, PATCH or
  DELETE that reaches an endpoint of the control app is a change, named from its path by
  :func:`derived_action` (``PUT /api/v1/destinations/d1`` is ``destination.update``,
  ``POST /tracking-plans`` is ``tracking_plan.create``). New endpoints of other modules are
  therefore recorded without an edit here. (The tracking API never reaches the control app.)
- ``READ``: a read of personal data (profiles, events, dead letters, SQL, regulations, the
  audit trail itself). Only the listed reads are recorded.

The rest of this module holds the small pure helpers of an entry: who (:func:`credentials`),
from where (:func:`client_origin`), and how the command line names itself
(:func:`cli_actor`, :func:`cli_origin`, :func:`cli_agent`).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventyard import __version__

CHANGE = "change"
READ = "read"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Longest string copied from a request into an entry's target or detail.
MAX_TEXT = 1000
#: Query parameters of the audit API, copied to the ``audit.*`` entries.
_AUDIT_QUERY = ("since", "until", "actor", "action", "after", "limit", "format", "workspace")


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]
    action: str
    kind: str
    #: ``str.format`` template over path parameters, ``query`` and ``body`` values.
    target: str = ""
    #: Query parameters copied to the detail.
    query: tuple[str, ...] = ()
    #: Body fields copied to the detail (lists as their length; ``name:type`` keeps the part
    #: of an identifier before ``:``, e.g. ``email``, never the value).
    body: tuple[str, ...] = ()


def _compile(template: str) -> re.Pattern[str]:
    """``/a/{name}/b/{rest:path}`` -> a regex; a trailing ``*`` also matches any sub-path."""
    tail = "(?:/.*)?" if template.endswith("*") else ""
    template = template.rstrip("*")
    out = ""
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]*)\})?", template):
        out += re.escape(literal)
        if name:
            key, _, kind = name.partition(":")
            out += f"(?P<{key}>.+)" if kind == "path" else f"(?P<{key}>[^/]+)"
    return re.compile(f"^{out}{tail}$")


def _rule(methods: str, path: str, action: str, kind: str, target: str = "", **more: tuple[str, ...]) -> Rule:
    wanted = frozenset(methods.split("|"))
    if "GET" in wanted:
        wanted |= {"HEAD"}
    return Rule(wanted, _compile(path), action, kind, target, **more)


_V1 = "/api/v1"
_PROFILE_API = "/v1/spaces/{space}/collections/{collection}/profiles/{ref:path}/{endpoint}"

#: The one table of what is recorded (first match wins). Actions are listed in docs/audit.md.
RULES: tuple[Rule, ...] = (
    # the Profile API (Basic auth with an access token) and the admin profile API
    _rule("GET", _PROFILE_API, "profile.read", READ, "{ref}"),
    _rule("GET", f"{_V1}/profiles/{{ref:path}}/explain", "profile.explain", READ, "{ref}"),
    _rule(
        "POST",
        f"{_V1}/profiles/{{ref:path}}/remove-identifier",
        "profile.remove_identifier",
        CHANGE,
        "{ref}",
        body=("identifier:type", "block"),
    ),
    _rule("POST", f"{_V1}/profiles/{{ref:path}}/split", "profile.split", CHANGE, "{ref}", body=("merge",)),
    _rule("GET", f"{_V1}/profiles/{{ref:path}}", "profile.read", READ, "{ref}", query=("events",)),
    _rule("PUT", f"{_V1}/identity/rules", "identity_rules.update", CHANGE, "{workspace}", query=("workspace",)),
    _rule("POST", f"{_V1}/profile-tokens", "token.create", CHANGE, "{name}", body=("name",)),
    # events: recent, live, dead letters (their payloads), replay and re-send
    _rule("GET", f"{_V1}/sources/{{source}}/events", "event.read", READ, "{source}", query=("limit",)),
    _rule("GET", f"{_V1}/live", "event.stream", READ, "{source}", query=("source", "type", "event", "recent")),
    _rule("GET", f"{_V1}/destinations/{{destination}}/dead-letters", "dead_letter.read", READ, "{destination}"),
    _rule(
        "POST",
        f"{_V1}/destinations/{{destination}}/dead-letters/resend",
        "dead_letter.resend",
        CHANGE,
        "{destination}",
        body=("ids", "all"),
    ),
    _rule(
        "POST",
        f"{_V1}/destinations/{{destination}}/replay",
        "destination.replay",
        CHANGE,
        "{destination}",
        body=("from", "to", "sources"),
    ),
    _rule("PUT", f"{_V1}/connections", "connection.update", CHANGE, "{source}->{destination}", body=("filters",)),
    _rule("DELETE", f"{_V1}/connections", "connection.delete", CHANGE, "{source}->{destination}"),
    # the warehouse
    _rule("POST", f"{_V1}/sql", "sql.query", READ, "{destination}", body=("sql", "maxRows")),
    _rule("GET", f"{_V1}/warehouse/describe", "warehouse.describe", READ, "{destination}"),
    # the audit trail itself
    _rule("GET", f"{_V1}/audit/export", "audit.export", READ, "{workspace}", query=_AUDIT_QUERY),
    _rule("GET", f"{_V1}/audit", "audit.read", READ, "{workspace}", query=_AUDIT_QUERY),
    # regulations: Segment's Public API (at the root and under /api/v1), RudderStack's v2 API
    # (subject ids are personal data: reading them is recorded; only their number is kept)
    *(
        rule
        for prefix in ("", _V1)
        for rule in (
            _rule(
                "POST",
                prefix + "/regulations/{scope}/{source}",
                "regulation.create",
                CHANGE,
                "{source}",
                body=("regulationType", "subjectType", "subjectIds"),
            ),
            _rule(
                "POST",
                prefix + "/regulations",
                "regulation.create",
                CHANGE,
                body=("regulationType", "subjectType", "subjectIds"),
            ),
            _rule("DELETE", prefix + "/regulations/{id}", "regulation.delete", CHANGE, "{id}"),
            _rule("GET", prefix + "/regulations*", "regulation.read", READ),
            _rule("GET", prefix + "/suppressions*", "suppression.read", READ),
        )
    ),
    _rule(
        "POST",
        "/v2/regulations",
        "regulation.create",
        CHANGE,
        body=("regulationType", "users", "sourceIds", "destinationIds"),
    ),
    _rule("DELETE", "/v2/regulations/{id}", "regulation.delete", CHANGE, "{id}"),
    _rule("GET", "/v2/regulations*", "regulation.read", READ),
    # privacy and governance settings whose paths do not name a thing and an id
    _rule("PUT", f"{_V1}/consent/categories", "consent.update", CHANGE, "{workspace}"),
    _rule("POST", f"{_V1}/consent/categories", "consent_category.create", CHANGE, "{id}"),
    _rule("PUT", f"{_V1}/consent/categories/{{category}}", "consent_category.update", CHANGE, "{category}"),
    _rule("DELETE", f"{_V1}/consent/categories/{{category}}", "consent_category.delete", CHANGE, "{category}"),
    _rule("PUT", f"{_V1}/pii/rules", "pii_rules.update", CHANGE, "{workspace}"),
    _rule("DELETE", f"{_V1}/pii/rules", "pii_rules.delete", CHANGE, "{workspace}"),
    _rule("DELETE", f"{_V1}/pii/report", "pii_report.delete", CHANGE, "{source}"),
    _rule("POST", f"{_V1}/pii/classify", "pii.classify", READ),  # the value tried is not kept
    _rule("PUT", f"{_V1}/sources/{{source}}/tracking-plan", "tracking_plan.attach", CHANGE, "{source}"),
    _rule("DELETE", f"{_V1}/sources/{{source}}/tracking-plan", "tracking_plan.detach", CHANGE, "{source}"),
)


@dataclass(frozen=True)
class Match:
    rule: Rule
    params: dict[str, str]
    #: True for a change found by :func:`derived_action` (recorded only if an endpoint answered).
    derived: bool = False


def match(method: str, path: str) -> Match | None:
    for rule in RULES:
        if method in rule.methods:
            found = rule.pattern.match(path)
            if found:
                return Match(rule, {k: v for k, v in found.groupdict().items() if v is not None})
    if method in WRITE_METHODS:
        action, target = derived_action(method, path)
        return Match(Rule(frozenset({method}), re.compile(""), action, CHANGE), {"_target": target}, derived=True)
    return None


def _singular(segment: str) -> str:
    word = segment.replace("-", "_")
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def derived_action(method: str, path: str) -> tuple[str, str]:
    """(action, target) of a change from its path (after ``/api/v1``, ``/v1`` or ``/v2``).

    ``/<things>`` and ``/<things>/<id>`` name a collection and an object: POST on a
    collection creates, PUT/PATCH update, DELETE deletes. A last segment that is a verb
    (``/api/v1/destinations/d1/test``) becomes the verb: ``destination.test``.
    """
    for prefix in (_V1, "/v1", "/v2"):
        if path.startswith(f"{prefix}/"):
            path = path[len(prefix) :]
            break
    parts = [p for p in path.split("/") if p]
    verb = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}[method]
    if not parts:
        return f"api.{verb}", ""
    if len(parts) % 2 == 0:  # ends with an object id
        return f"{_singular(parts[-2])}.{verb}", parts[-1]
    last = parts[-1]
    if len(parts) >= 3 and not last.endswith("s"):  # /things/{id}/<verb>
        return f"{_singular(parts[-3])}.{last.replace('-', '_')}", parts[-2]
    return f"{_singular(last)}.{verb}", parts[-2] if len(parts) >= 2 else ""


# ------------------------------------------------------------------ parts of an entry


def _short(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def target_of(found: Match, query: Mapping[str, str], body: Mapping[str, Any]) -> str:
    """The rule's target template filled from path, query and body (strings only)."""
    if found.derived:
        return found.params.get("_target", "")
    values = _Blank({k: str(v) for k, v in body.items() if isinstance(v, (str, int)) and not isinstance(v, bool)})
    values.update(query)
    values.update(found.params)
    text = found.rule.target.format_map(values)
    return "" if text == "->" else _short(text)


def detail_of(found: Match, query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's query parameters and body fields, reduced as the rule says."""
    detail: dict[str, Any] = {}
    for name in found.rule.query:
        if name in query:
            detail[name] = _short(query[name])
    for spec in found.rule.body:
        name, _, reduce = spec.partition(":")
        if name not in body:
            continue
        value = body[name]
        if reduce == "type":
            detail[f"{name}_type"] = value.partition(":")[0] if isinstance(value, str) else None
        elif isinstance(value, list):
            detail[name] = len(value)
        elif isinstance(value, dict):
            detail[name] = sorted(value)[:20]
        elif isinstance(value, str):
            detail[name] = _short(value)
        else:
            detail[name] = value
    if found.derived and isinstance(body.get("name"), str):  # names are neither secret nor personal
        detail["name"] = _short(body["name"])
    if found.rule.action == "profile.read" and "endpoint" in found.params:
        detail["endpoint"] = found.params["endpoint"]
        detail["collection"] = found.params.get("collection", "")
    return detail


def credentials(authorization: str) -> str | None:
    """The secret of a ``Bearer`` header or the user name of a ``Basic`` one (Profile API)."""
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(value, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


def client_origin(peer: str | None, forwarded_for: str, trust_forwarded_for: bool) -> tuple[str, str | None]:
    """(origin, proxy): the client address; behind a trusted proxy the last X-Forwarded-For
    hop (the address the proxy itself saw; earlier hops are the client's own claim)."""
    if trust_forwarded_for and forwarded_for.strip():
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if hops:
            return hops[-1][:100], peer
    return (peer or "unknown"), None


def cli_actor() -> str:
    """``cli:<OS user>``: who runs the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def cli_origin() -> str:
    return f"cli:{socket.gethostname()}"


def cli_agent() -> str:
    """The User-Agent of the command line's API calls: the server records it in each entry."""
    return f"eventyard-cli/{__version__} ({cli_actor()}@{cli_origin()[4:]})"
