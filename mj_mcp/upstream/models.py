"""What upstream answers, parsed leniently: the reply object of the endpoints it runs as tasks
(``/midjourney/imagine``, ``/edits``, ``/videos``), the tasks of ``/midjourney/tasks``, and the small
answers of ``/describe``, ``/seed``, ``/shorten`` and ``/translate`` (docs/upstream.md).

Leniency is what keeps a paid image: one odd field (``actions: null``, ``progress: "35%"``, a width of
``"1024px"``, a list where an object belongs) must not make the whole record unreadable, or the job
following it would stop. Each field reads what it can; a field that still does not fit is dropped
(logged by name, never by value) and the record is read without it. Only a record without its
required fields fails, and the client reports that as a transient ``UnreadableReply``.

Pure data with no HTTP: the client returns these and the jobs translate them into records; nothing
here says when a task is finished, which depends on what it makes (``records.Kind``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import errors
from .wire import error_from_payload

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


def _strings(v: Any) -> Any:
    """A list of strings from whatever came: non-strings dropped, a non-list read as none."""
    return [item for item in v if isinstance(item, str)] if isinstance(v, list) else []


class TaskUpdate(_Lenient):
    """One reply object of an endpoint upstream runs as a task: a stream line, a synchronous body, a
    task's ``response``, a callback. The same object for every such endpoint, each filling its own
    fields: images (``/imagine``, ``/edits``), ``video_id`` and ``video_urls`` (``/videos``),
    ``descriptions`` (a describe task). Widths may be numeric strings, and any key may be missing.
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
    sub_image_urls: list[str] = Field(default_factory=list)
    video_id: str | None = None
    video_urls: list[str] = Field(default_factory=list)
    descriptions: list[str] = Field(default_factory=list)
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

    @field_validator("task_id", "image_id", "image_url", "raw_image_url", "video_id", "trace_id", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        return _text(v)

    @field_validator("actions", "sub_image_urls", "video_urls", "descriptions", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _strings(v)

    @property
    def failed(self) -> bool:
        """Upstream says the task failed (``success: false``): terminal, whatever it makes."""
        return self.success is False

    @property
    def succeeded_fully(self) -> bool:
        """Upstream says the task succeeded at full progress; whether the reply carries what the task
        makes is the record's kind to judge (``records.Kind``)."""
        return self.success is True and self.progress == 100

    def failure(self) -> errors.UpstreamError:
        exc = error_from_payload(self.model_dump(), task=True)
        exc.message = errors.clip(exc.message, MAX_MESSAGE)
        return exc


class UpstreamTask(_Lenient):
    """A task as ``/midjourney/tasks`` reports it; ``response`` is absent while it is pending."""

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


class TaskBatch(_Lenient):
    """``retrieve_batch``: a page of tasks, newest first, and how many match in all."""

    items: list[UpstreamTask] = Field(default_factory=list)
    count: int | None = None

    @field_validator("items", mode="before")
    @classmethod
    def _readable_items(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return []
        kept = []
        for item in v:
            if isinstance(item, dict) and "id" in item:
                try:
                    kept.append(UpstreamTask.model_validate(item))
                except ValidationError as exc:
                    log.warning("skipped an unreadable task (%s)", unreadable_fields(exc))
        return kept


class DescribeReply(_Lenient):
    """``/midjourney/describe``: four prompts for an image, each ready for imagine."""

    descriptions: list[str]
    task_id: str | None = None

    @field_validator("descriptions", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return _strings(v) if isinstance(v, list) else v

    @field_validator("task_id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return _text(v)


class SeedReply(_Lenient):
    """``/midjourney/seed``: the seed of a finished image, as a string (a number is spelt out)."""

    seed: str

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, v: Any) -> Any:
        return _text(v)


class ShortenReply(_Lenient):
    """``/midjourney/shorten``: up to five shorter candidates of a prompt."""

    prompts: list[str]

    @field_validator("prompts", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return _strings(v) if isinstance(v, list) else v


class TranslateReply(_Lenient):
    """``/midjourney/translate``: the prompt in English."""

    content: str


def unreadable_fields(exc: ValidationError) -> str:
    """Which fields did not fit, by name: a validation error's own text quotes the values."""
    return ", ".join(sorted({".".join(map(str, e["loc"])) or "record" for e in exc.errors(include_input=False)}))
