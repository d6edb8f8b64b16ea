"""What upstream sends: the reply objects of ``/midjourney/imagine`` and the task records of
``/midjourney/tasks``, parsed leniently (docs/upstream.md says which fields are typed loosely).

Pure data with no HTTP: the client, the jobs and the records all read these.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import errors


class TaskUpdate(BaseModel):
    """One reply object from upstream: a stream line, a sync body, a task record's ``response``.

    Lenient on purpose: widths may be numeric strings (docs/upstream.md, "The reply object"), keys may be missing.
    """

    model_config = ConfigDict(extra="ignore")

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
        if isinstance(v, str):
            return int(float(v)) if v.strip() else None
        return v

    @field_validator("progress", mode="before")
    @classmethod
    def _progress(cls, v: Any) -> Any:
        return float(v) if isinstance(v, str) and v.strip() else v

    @property
    def failed(self) -> bool:
        return self.success is False

    @property
    def final(self) -> bool:
        """Terminal: failed, or succeeded with full progress (docs/upstream.md, "/midjourney/tasks")."""
        return self.failed or (self.success is True and self.progress == 100 and bool(self.image_url))

    def failure(self) -> errors.UpstreamError:
        return errors.from_payload(self.model_dump(), task=True)


class TaskRecord(BaseModel):
    """A ``/midjourney/tasks`` record; ``response`` is absent while the task is pending."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    response: TaskUpdate | None = None
    created_at: Any = None

    @property
    def update(self) -> TaskUpdate:
        upd = self.response or TaskUpdate()
        if upd.task_id is None:
            upd = upd.model_copy(update={"task_id": self.id})
        return upd
