"""One typed error hierarchy; every error carries the next step the model can take.

    MjMcpError                  base: .message, .next_step; str() gives both
    ├── SettingsError           a setting's value is not accepted: the server does not start
    ├── InvalidInput            refused locally; nothing was sent upstream
    │   ├── UnknownReference    a name / image_id / task_id that resolves to nothing
    │   ├── ActionNotAllowed    the action is not one the image offers
    │   ├── NameTaken           a caller-chosen name is already in use
    │   ├── LimitReached        a principal's limit (jobs at once, generations a day): .limit, .resets_at
    │   └── Declined            the person, asked before paying (MJ_MCP_CONFIRM), said no
    ├── StoreError              the store (MJ_MCP_STORE) does not answer, is not a readable store, or
    │                           refuses writes: at start the server does not start; in a call, a tool error
    ├── ExportRefused           export_image's path or the file there does not allow the write
    ├── ImageUnavailable        a record has no image to show or keep (yet), or it is gone
    │   ├── FetchFailed         downloading an image failed (never quotes the URL)
    │   ├── DamagedCopy         a cached file was truncated, corrupted or replaced (and deleted)
    │   └── UnreadableImage     bytes Pillow cannot or should not decode (a bomb): no thumbnail
    └── UpstreamError           from the API or on the way to it: .code, .status, .trace_id, .task_id
        ├── AuthError           401 invalid_token (no_token, token_expired), 400 token_mismatched
        ├── BalanceError        403 used_up
        ├── ModerationError     403 forbidden
        ├── RateLimited         429 too_many_requests (.retry_after)
        ├── BadRequest          400 bad_request, api_not_implemented, other 4xx
        ├── UpstreamTimeout     504 timeout
        ├── ServerError         5xx api_error, gateway pages that are not JSON
        ├── TaskFailed          accepted, then finished with success: false
        ├── UnreadableReply     a 200 whose record we cannot read: transient, the task goes on
        └── ConnectionLost      the connection failed, or a stream ended with no task to follow
            └── StreamInterrupted  a stream ended before its final line: the job recovers by
                                   polling and never resubmits; it does not reach a tool

Reading upstream's error bodies into these classes is the upstream client's work (``upstream/wire.py``);
this module is the tree alone, at the bottom of the layers, so every layer can raise and catch it.
"""

from __future__ import annotations

from typing import Any


class MjMcpError(Exception):
    next_step: str = ""

    def __init__(self, message: str, *, next_step: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if next_step is not None:
            self.next_step = next_step

    def __str__(self) -> str:
        text = self.message.rstrip(".") + "."
        return f"{text} Next: {self.next_step}" if self.next_step else text


class SettingsError(MjMcpError):
    """Raised at start, naming each variable whose value is not accepted and what it accepts."""

    next_step = "Fix the environment variable(s) in the MCP host's configuration and restart the server."


class InvalidInput(MjMcpError):
    """Refused before any request: the model can fix the call and retry at no cost."""

    def __str__(self) -> str:
        return super().__str__() + " Nothing was sent upstream."


class UnknownReference(InvalidInput):
    pass


class ActionNotAllowed(InvalidInput):
    pass


class NameTaken(InvalidInput):
    pass


class LimitReached(InvalidInput):
    """A limit of the caller (set by the server's operator) is reached; the message names it and when
    it resets."""

    def __init__(self, message: str, *, limit: str, resets_at: float | None, next_step: str) -> None:
        super().__init__(message, next_step=next_step)
        self.limit = limit  # the setting's name, e.g. max_daily
        self.resets_at = resets_at  # unix time; None when it frees as running jobs end


class Declined(InvalidInput):
    """The person was asked before the job was paid for (the spend guard, ``MJ_MCP_CONFIRM``) and said no,
    or did not answer: nothing was stored or sent."""


class StoreError(MjMcpError):
    """The store failed: the message says which store (never a password), what it did, and that the
    setting is ``MJ_MCP_STORE``; the next step what to do about it. Raised by the stores themselves,
    which map their drivers' errors (``sqlite3.Error``, ``redis.RedisError``) at their boundary."""

    next_step = "Check the store MJ_MCP_STORE names, then call again."


class ExportRefused(MjMcpError):
    """The path or the file there does not allow this write; nothing was written."""


class ImageUnavailable(MjMcpError):
    """The record has no image to show or keep (yet), or its bytes are gone; the message says why."""


class FetchFailed(ImageUnavailable):
    """An image could not be downloaded; the message says why in a few words, never a URL."""


class DamagedCopy(ImageUnavailable):
    """A cached image's file no longer matches what was written; it was deleted. The message says how."""


class UnreadableImage(ImageUnavailable):
    """The image's bytes do not decode, or are too large to decode safely; the paid record stands."""


class UpstreamError(MjMcpError):
    default_code = "api_error"
    next_step = "Try again later; if it persists, quote the trace id to AceDataCloud support."

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        task_id: str | None = None,
        next_step: str | None = None,
    ) -> None:
        super().__init__(message, next_step=next_step)
        self.code = code or self.default_code
        self.status = status
        self.trace_id = trace_id
        self.task_id = task_id  # a timeout may name the task it gave up waiting for: follow it

    def __str__(self) -> str:
        where = f"upstream {self.status} {self.code}" if self.status else f"upstream {self.code}"
        trace = f" (trace {self.trace_id})" if self.trace_id else ""
        nxt = f" Next: {self.next_step}" if self.next_step else ""
        return f"{where}: {self.message.rstrip('.')}{trace}.{nxt}"


class AuthError(UpstreamError):
    default_code = "invalid_token"
    next_step = (
        "Check ACEDATACLOUD_API_TOKEN in the MCP server's environment (a Midjourney API token from "
        "platform.acedata.cloud)."
    )


class BalanceError(UpstreamError):
    default_code = "used_up"
    next_step = "The AceDataCloud balance is used up: top it up, then retry."


class ModerationError(UpstreamError):
    default_code = "forbidden"
    next_step = "The prompt was refused by moderation: rephrase it without the flagged content."


class RateLimited(UpstreamError):
    default_code = "too_many_requests"
    next_step = "Rate limited: wait a minute before the next generation."

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class BadRequest(UpstreamError):
    default_code = "bad_request"
    next_step = "Fix the request as the message says; nothing was generated."


class UpstreamTimeout(UpstreamError):
    default_code = "timeout"
    next_step = "Upstream gave up waiting; the job may still finish: call get_task with the task id, or try again."


class ServerError(UpstreamError):
    default_code = "api_error"


class TaskFailed(UpstreamError):
    next_step = "The job ended without an image: adjust the request (quote the message) and try again."


class ConnectionLost(UpstreamError):
    default_code = "connection_lost"
    next_step = "Check the network and ACEDATACLOUD_API_BASE_URL, then try again."


class StreamInterrupted(ConnectionLost):
    """The ndjson stream ended before a final line; the job recovers by polling, never resubmits."""


class UnreadableReply(UpstreamError):
    """Upstream answered 200 with a task record or reply we cannot read. Transient: the task goes on
    upstream, so a poller keeps polling; only ``success: false`` from upstream fails a job."""

    default_code = "bad_reply"
    next_step = "The job goes on upstream: call get_task again in a moment."


def clip(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: input quoted back in an error
    lands in the model's context, and a 1 MB reference must not."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def quote(text: str, limit: int = 40) -> str:
    """A piece of the caller's input for an error message: quoted (control characters escaped, so
    it cannot forge lines of its own), at most ``limit`` characters of it, and its length if cut."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"
