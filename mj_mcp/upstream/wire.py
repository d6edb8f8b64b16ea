"""Upstream's refusals, read off the wire: any error body becomes one class of the ``errors`` tree.

Bodies come in several shapes (docs/upstream.md, "Errors"): the OpenAPI shape
``{"error": {"code", "message"}, "trace_id"}``, the guides' ``{"success": false, "error": {...}}``,
a task's or callback's failure ``{"success": false, "task_id", "error"}``, and degenerate ones
(``{"error": "text"}``, ``{"detail": ...}``, an empty body, a proxy's HTML page). A body is classified
by its code first and its HTTP status second; the class carries the next step the model can take.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import (
    AuthError,
    BadRequest,
    BalanceError,
    ModerationError,
    RateLimited,
    ServerError,
    TaskFailed,
    UpstreamError,
    UpstreamTimeout,
)

BY_CODE: dict[str, type[UpstreamError]] = {
    "invalid_token": AuthError,
    "no_token": AuthError,
    "token_expired": AuthError,
    "token_mismatched": AuthError,
    "used_up": BalanceError,
    "forbidden": ModerationError,
    "too_many_requests": RateLimited,
    "bad_request": BadRequest,
    "api_not_implemented": BadRequest,
    "timeout": UpstreamTimeout,
    "api_error": ServerError,
}
BY_STATUS: dict[int, type[UpstreamError]] = {
    401: AuthError,
    403: ModerationError,
    429: RateLimited,
    504: UpstreamTimeout,
}


def classify(code: str | None, status: int | None) -> type[UpstreamError]:
    """The error class of an upstream ``error.code`` (first) or HTTP status."""
    if code and code in BY_CODE:
        return BY_CODE[code]
    if status in BY_STATUS:
        return BY_STATUS[status]
    if status is not None and 400 <= status < 500:
        return BadRequest
    return ServerError


def error_from_payload(payload: Mapping[str, Any], status: int | None = None, *, task: bool = False) -> UpstreamError:
    """An error from a parsed JSON body: ``error`` as an object, as a string, then ``detail``. With
    ``task``, the body is a task's own failure (``success: false``), whatever its code."""
    err = payload.get("error")
    code = message = None
    if isinstance(err, dict):
        code, message = err.get("code"), err.get("message")
    elif isinstance(err, str) and err:
        message = err
    if not message and payload.get("detail"):
        detail = payload["detail"]
        message = detail if isinstance(detail, str) else json.dumps(detail)[:300]
    code = str(code) if code else None
    text = str(message) if message else f"HTTP {status}" if status else "no message"
    trace, task_id = payload.get("trace_id"), payload.get("task_id")
    cls = TaskFailed if task else classify(code, status)
    return cls(
        text,
        code=code or (f"http_{status}" if status and cls is BadRequest else None),
        status=status,
        trace_id=str(trace) if trace else None,
        task_id=str(task_id) if task_id else None,
    )


def error_from_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> UpstreamError:
    """An error from any non-2xx response (or a 2xx one whose body says ``success: false``)."""
    text = body.decode("utf-8", "replace").strip()
    payload: Any = None
    if text:
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
    if isinstance(payload, dict):
        exc = error_from_payload(payload, status)
    else:
        snippet = " ".join(text.split())[:200] if text else "empty body"
        exc = classify(None, status)(f"non-JSON reply: {snippet}", code=f"http_{status}", status=status)
    if isinstance(exc, RateLimited) and headers:
        try:
            exc.retry_after = float(headers.get("retry-after", ""))
        except ValueError:
            pass
    return exc
