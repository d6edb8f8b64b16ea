"""The image record: everything known about one task and the image it makes. Pure data.

A record is created (with its name reserved) before its request leaves the process, so everything a
user pays for is in the store first. While it runs, exactly one follower (``jobs.py``) advances it, by
``advanced(record, update)``; everyone else reads snapshots from the store.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from .core import actions
from .core.actions import Kind
from .upstream.models import TaskUpdate

Status = Literal["running", "completed", "failed"]

# What a tool result shows of a record (``structuredContent``); the rest is bookkeeping.
PUBLIC_FIELDS = frozenset({
    "name", "status", "progress", "kind", "task_id", "image_id", "image_url", "raw_image_url", "width", "height",
    "raw_width", "raw_height", "actions", "parent", "action", "prompt", "sources", "error", "created_at"})


class ErrorInfo(BaseModel):
    code: str
    message: str


class Submission(BaseModel):
    """What a submit sent, as upstream records it (docs/upstream.md, "Finding a lost submit"): the
    endpoint, and the fingerprint of the body it sent (``upstream.Endpoint.fingerprint_of``): enough to
    find the task again when the submit lost its connection before upstream named it, even after a
    restart. Large fields (a region repaint's mask) are not in it: upstream's record is matched without them."""

    endpoint: str = "imagine"
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    # When the request left, unix seconds.
    at: float = Field(default_factory=time.time)

    @model_validator(mode="before")
    @classmethod
    def _from_an_imagine_only_store(cls, data: Any) -> Any:
        """A record stored before every endpoint had its request (mj-mcp 0.2) kept the fingerprint of
        an imagine submit flat: ``action``, ``prompt``, ``image_id``."""
        if isinstance(data, dict) and "fingerprint" not in data and "action" in data:
            old = {k: data.get(k) for k in ("action", "prompt", "image_id")}
            return {"endpoint": "imagine", "fingerprint": old, "at": data.get("at", time.time())}
        return data


class ImageRecord(BaseModel):
    """One task and its image, in one workspace."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)  # never reused: lineage links and leases use it
    workspace: str = "default"
    name: str
    status: Status = "running"
    progress: float = 0.0
    kind: Kind | None = Field(None, description="grid (2x2, quadrants 1-4 from top-left), single or upscaled")
    task_id: str | None = None
    image_id: str | None = None
    image_url: str | None = None
    raw_image_url: str | None = None
    width: int | None = None
    height: int | None = None
    raw_width: int | None = None
    raw_height: int | None = None
    actions: list[str] = Field(default_factory=list, description="what apply_action accepts on this image")
    parent: str | None = None  # the parent's name when this was made (names of evicted records come back)
    parent_id: str | None = None  # the parent's id: what lineage walks follow
    action: str = "generate"
    prompt: str | None = None
    sources: list[str] = Field(default_factory=list, description="image references used as image prompts")
    error: ErrorInfo | None = None
    created_at: float = Field(default_factory=time.time)
    submission: Submission | None = None  # kept while running: how to find a lost submit's task
    preview_url: str | None = None  # the latest intermediate preview upstream streamed, while running
    callback_key: str | None = None  # callback mode: the sha256 of the secret in this task's callback URL

    @property
    def final(self) -> bool:
        return self.status != "running"

    def public(self) -> dict[str, object]:
        return self.model_dump(mode="json", include=set(PUBLIC_FIELDS))


def advanced(record: ImageRecord, update: TaskUpdate) -> ImageRecord:
    """The record after one upstream update. Only a final update's image_id and actions are kept:
    intermediate stream lines carry throwaway ids and previews that upstream destroys."""
    if record.final:
        return record  # a final record never moves again (a late or duplicated line changes nothing)
    changes: dict[str, object] = {}
    if update.task_id and not record.task_id:
        changes["task_id"] = update.task_id
    if update.failed:
        exc = update.failure()
        return failed(record.model_copy(update=changes), exc.code, exc.message)
    if update.progress is not None:
        changes["progress"] = max(record.progress, min(update.progress, 100.0))
    if update.succeeded_fully and bool(update.image_url):
        known = actions.BY_NAME.get(record.action)
        changes.update(
            status="completed", progress=100.0, image_id=update.image_id, image_url=update.image_url,
            raw_image_url=update.raw_image_url or update.image_url, width=update.image_width,
            height=update.image_height, raw_width=update.raw_image_width or update.image_width,
            raw_height=update.raw_image_height or update.image_height, actions=list(update.actions),
            kind=known.makes if known else actions.kind_of(update.actions), submission=None, preview_url=None)
    elif update.image_url:
        changes["preview_url"] = update.image_url
    return record.model_copy(update=changes)


def failed(record: ImageRecord, code: str, message: str) -> ImageRecord:
    return record.model_copy(update={"status": "failed", "error": ErrorInfo(code=code, message=message),
                                     "submission": None, "preview_url": None})
