"""Control API of PII controls: rules, the PII report, and a classifier to try values on.

- ``GET|PUT|DELETE /api/v1/pii/rules[?workspace=W]``: the workspace's rules (``{detect,
  rules}``; see ``privacy.pii_rules``), replaced as a whole; DELETE switches PII controls off;
- ``GET /api/v1/pii/report[?source=S]``: which fields carried which kind of PII, how often,
  first and last seen, and the action the current rules take on them;
  ``DELETE`` forgets the counts (e.g. after fixing an instrumentation);
- ``POST /api/v1/pii/classify`` ``{"value": "..."}``: the kind, normalized form, hash and mask.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventyard.control.auth import Authenticator, principal_of, target_workspace, visible
from eventyard.control.consent_api import destination_names
from eventyard.control.http import ApiError, json_object, json_response
from eventyard.errors import ConfigError
from eventyard.privacy import pii_rules
from eventyard.privacy.pii_classify import KINDS, classify, hash_value, mask_value, normalize
from eventyard.runtime.components import Components
from eventyard.state.base import Source, Workspace


def report_rows(
    findings: list[Any], sources: dict[str, Source], config: pii_rules.PiiConfig | None
) -> list[dict[str, Any]]:
    rows = []
    for f in findings:
        rule = pii_rules.rule_for(config, f.path, f.kind) if config is not None else None
        src = sources.get(f.source_id)
        rows.append(
            {
                "source": src.name if src else f.source_id,
                "sourceId": f.source_id,
                "path": f.path,
                "kind": f.kind,
                "count": f.count,
                "firstSeen": f.first_seen,
                "lastSeen": f.last_seen,
                "action": rule.action if rule else "none",
                "rule": rule.label if rule else None,
                "destinations": dict(rule.destinations) if rule else {},
            }
        )
    return rows


def pii_routes(components: Components, auth: Authenticator) -> list[Route]:
    state = components.state

    async def workspace_of(request: Request, body: dict[str, Any] | None = None) -> Workspace:
        principal = await auth.authenticate(request)
        ref = (body or {}).pop("workspace", None) or request.query_params.get("workspace")
        return await target_workspace(state, principal, ref)

    async def rules(request: Request) -> Response:
        body = await json_object(request) if request.method == "PUT" else None
        ws = await workspace_of(request, body)
        if request.method == "GET":
            doc = await state.get_document(ws.id, pii_rules.DOC_KIND, pii_rules.DOC_NAME)
            data = pii_rules.to_body(pii_rules.parse(doc.body)) if doc else {"detect": False, "rules": []}
            return json_response({"data": {"workspace": ws.name, "version": doc.version if doc else 0, **data}})
        principal = principal_of(request)
        actor = principal.actor if principal else ""
        if request.method == "DELETE":
            gone = await state.delete_document(ws.id, pii_rules.DOC_KIND, pii_rules.DOC_NAME, actor=actor)
            return json_response({"data": {"workspace": ws.name, "deleted": gone}})
        assert body is not None
        try:
            config = pii_rules.parse(body)
        except ConfigError as exc:
            raise ApiError(400, "invalid_body", str(exc)) from None
        fixed = []
        for i, rule in enumerate(config.rules):
            names = await destination_names(state, ws, list(rule.destinations), f"rules[{i}].destinations")
            fixed.append(
                {
                    **pii_rules.to_body(pii_rules.PiiConfig(rules=[rule]))["rules"][0],
                    "destinations": dict(zip(names, rule.destinations.values(), strict=True)),
                }
            )
        stored = pii_rules.to_body(pii_rules.parse({"detect": config.detect, "rules": fixed}))
        doc = await state.put_document(ws.id, pii_rules.DOC_KIND, pii_rules.DOC_NAME, stored, actor=actor)
        return json_response({"data": {"workspace": ws.name, "version": doc.version, **stored}})

    async def report(request: Request) -> Response:
        ws = await workspace_of(request)
        principal = principal_of(request)
        sources = {s.id: s for s in visible(principal, await state.list_sources(ws.id))}
        source_id = None
        ref = request.query_params.get("source")
        if ref:
            match = [s for s in sources.values() if ref in (s.id, s.name)]
            if not match:
                raise ApiError(404, "not_found", f"no source with id or name {ref!r}")
            source_id = match[0].id
        if request.method == "DELETE":
            n = await state.clear_pii_findings(ws.id, source_id=source_id)
            return json_response({"data": {"workspace": ws.name, "cleared": n}})
        doc = await state.get_document(ws.id, pii_rules.DOC_KIND, pii_rules.DOC_NAME)
        config = pii_rules.parse(doc.body) if doc else None
        findings = await state.list_pii_findings(ws.id, source_id=source_id)
        return json_response({"data": report_rows(findings, sources, config)})

    async def try_classify(request: Request) -> Response:
        await auth.authenticate(request)
        body = await json_object(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise ApiError(400, "invalid_body", "`value` (a string) is required")
        kind = body.get("kind")
        if kind is not None and kind not in KINDS:
            raise ApiError(400, "invalid_body", f"`kind` must be one of {', '.join(KINDS)}")
        detected = classify(value)
        used = kind or detected
        return json_response(
            {
                "data": {
                    "kind": detected,
                    "normalized": normalize(used, value),
                    "hash": hash_value(used, value),
                    "mask": mask_value(used, value),
                }
            }
        )

    return [
        Route("/api/v1/pii/rules", rules, methods=["GET", "PUT", "DELETE"]),
        Route("/api/v1/pii/report", report, methods=["GET", "DELETE"]),
        Route("/api/v1/pii/classify", try_classify, methods=["POST"]),
    ]
