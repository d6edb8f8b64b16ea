"""What upstream sends: the reply objects of ``/midjourney/imagine`` and the task records of
``/midjourney/tasks``, parsed leniently.

Leniency is what keeps a paid image: one odd field (``actions: null``, ``progress: "35%"``, a width of
``"1024px"``, a list where an object belongs) must not make the whole record unreadable, or the job
following it would stop. Each field reads what it can; a field that still does not fit is dropped
(logged by name, never by value) and the record is read without it. Only a record without its
required fields fails, and the client reports that as a transient ``UnreadableReply``.

Pure data with no HTTP: the client, the jobs and the records all read these.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import errors

log = logging.getLogger("mj_mcp.upstream")

MAX_MESSAGE = 500  # characters of an upstream error message kept: it lands in the model's context
_LEADING_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)")


def _number(v: Any) -> Any:
    """A number from a numeric string with a unit or a sign after it ("1024px", "35%", " 12 ")."""
    if isinstance(v, str):
        m = _LEADING_NUMBER.match(v)
        return float(m.group(1)) if m else None
    return v


def _text(v: Any) -> Any:
    """Ids and URLs are strings; a number is spelt out, anything else is left to fail (and be dropped)."""
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="wrap")
    @classmethod
    def _read_what_we_can(cls, data: Any, handler: Any) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            bad = {str(e["loc"][0]) for e in exc.errors(include_input=False) if e["loc"]}
            required = {name for name, f in cls.model_fields.items() if f.is_required()}
            if not bad or bad & required:
                raise
            log.warning("%s: ignored unreadable field(s): %s", cls.__name__, ", ".join(sorted(bad)))
            return handler({k: v for k, v in data.items() if k not in bad})


class TaskUpdate(_Lenient):
    """One reply object from upstream: a stream line, a sync body, a task record's ``response``.

    Lenient on purpose: widths may be numeric strings (docs/upstream.md, "The reply object"), keys may be missing.
    """

    task_id: str | None = None
    success: bool | None = None
    progress: float | None = None
    image_id: str | None = None
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    raw_image_url: str | None = None
    raw_image_width: int | None = None
    raw_image_height: int | None = None
    actions: list[str] = Field(default_factory=list)
    error: Any = None
    trace_id: str | None = None

    @field_validator("image_width", "image_height", "raw_image_width", "raw_image_height", mode="before")
    @classmethod
    def _int_or_numeric_string(cls, v: Any) -> Any:
        v = _number(v)
        return int(v) if isinstance(v, float) else v

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, v: Any) -> Any:
        return _number(v)

    @field_validator("task_id", "image_id", "image_url", "raw_image_url", "trace_id", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        return _text(v)

    @field_validator("actions", mode="before")
    @classmethod
    def _action_names(cls, v: Any) -> Any:
        return [a for a in v if isinstance(a, str)] if isinstance(v, list) else []

    @property
    def failed(self) -> bool:
        return self.success is False

    @property
    def final(self) -> bool:
        """Terminal: failed, or succeeded with full progress (docs/upstream.md, "/midjourney/tasks")."""
        return self.failed or (self.success is True and self.progress == 100 and bool(self.image_url))

    def failure(self) -> errors.UpstreamError:
        exc = errors.from_payload(self.model_dump(), task=True)
        exc.message = errors.clip(exc.message, MAX_MESSAGE)
        return exc


class TaskRecord(_Lenient):
    """A ``/midjourney/tasks`` record; ``response`` is absent while the task is pending."""

    id: str
    type: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    response: TaskUpdate | None = None
    created_at: Any = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return _text(v)

    @property
    def update(self) -> TaskUpdate:
        upd = self.response or TaskUpdate()
        if upd.task_id is None:
            upd = upd.model_copy(update={"task_id": self.id})
        return upd
