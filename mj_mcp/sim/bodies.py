"""Upstream's error codes, statuses, messages and body shapes (docs/upstream.md, "Errors").

Every error body carries ``error.code``, ``error.message`` and ``trace_id``; the ``error_shape`` knob
picks the guide shape (with ``success: false``), the OpenAPI shape (without), or alternates them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from .state import SimState

STATUS: dict[str, int] = {
    "bad_request": 400,
    "token_mismatched": 400,
    "api_not_implemented": 400,
    "invalid_token": 401,
    "forbidden": 403,
    "used_up": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "too_many_requests": 429,
    "api_error": 500,
    "timeout": 504,
}

MESSAGES: dict[str, str] = {
    "bad_request": "The json payload is not valid to request the API",
    "token_mismatched": "The specified token is not matched with API.",
    "api_not_implemented": "The API is not implemented.",
    "invalid_token": "The specified token is invalid or wrong.",
    # The vendor's own spelling, "Al moderators", kept on purpose.
    "forbidden": "Sorry! Our Al moderators feel your prompt might be against our community standards.",
    "used_up": "Your balance is used up.",
    "not_found": "The requested resource was not found.",
    "method_not_allowed": "Method not allowed.",
    "too_many_requests": "You have exceeded the rate limit.",
    "api_error": "Internal server error.",
    "timeout": "Timeout to generate the image.",
}


class SimError(Exception):
    """An upstream error reply: raised anywhere in request handling, rendered by the app."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, code)
        self.status = status or STATUS.get(code, 500)
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(f"{self.status} {code}: {self.message}")


def status_for(code: str) -> int:
    """The HTTP status a failed task maps to in a synchronous reply."""
    return STATUS.get(code, 500)


def body(code: str, message: str, trace_id: str, *, guide: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One error body in the guide shape (``success: false`` first) or the OpenAPI shape."""
    out: dict[str, Any] = {"success": False} if guide else {}
    out["error"] = {"code": code, "message": message}
    out["trace_id"] = trace_id
    if extra:
        out.update(extra)
    return out


def error_response(state: SimState, err: SimError, trace_id: str) -> JSONResponse:
    """The reply for ``err``, in the configured error shape."""
    shape = state.config.error_shape
    if shape == "random":
        with state.lock:
            state.counter += 1
            guide = state.counter % 2 == 0
    else:
        guide = shape == "guide"
    return JSONResponse(
        body(err.code, err.message, trace_id, guide=guide, extra=err.extra), status_code=err.status, headers=err.headers
    )
