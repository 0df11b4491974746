"""HTTP helpers of the control API: the one error shape ``{"code": "...", "message": "..."}``,
JSON responses, query parameters."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        #: Seconds for a ``Retry-After`` header (429/503).
        self.retry_after = retry_after

    def response(self) -> Response:
        resp = json_response({"code": self.code, "message": self.message}, self.status)
        if self.retry_after is not None:
            resp.headers["Retry-After"] = str(self.retry_after)
        return resp


def json_response(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


def query_number(request: Request, name: str, default: float, lo: float, hi: float) -> float:
    """A numeric query parameter within ``[lo, hi]``; a clear 400 otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"`{name}` must be a number") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"`{name}` must be between {lo:g} and {hi:g}")
    return value


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 ``invalid_json`` / ``invalid_body`` otherwise."""
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body
