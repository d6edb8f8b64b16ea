"""Every upstream endpoint as a typed request: its path, its body model, its reply model, whether it
streams, and how a failed attempt may be retried (docs/upstream.md describes each one).

A body is a pydantic model of what mj-mcp sends (fields it leaves out are absent on the wire, never
``null``); an ``Endpoint`` pairs it with the rest. The client (``client.py``) reads nothing else to
send a request, and the jobs read ``fingerprint`` and ``task_type`` to find a submit that lost its
connection before upstream named its task (docs/upstream.md, "Finding a lost submit").

Adding an endpoint: its body model here (and its reply model in ``models.py`` unless it answers
with a ``TaskUpdate``), one ``Endpoint`` in ``ENDPOINTS``, and its section in docs/upstream.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .models import DescribeReply, SeedReply, ShortenReply, TaskBatch, TaskUpdate, TranslateReply, UpstreamTask

Mode = Literal["fast", "relax", "turbo"]


class Retry(StrEnum):
    """Which failed attempts may be sent again."""

    # May start a paid job: resent only when upstream provably started nothing (a 429 rejection, a
    # connection refused before any byte left). A 5xx or a timeout may follow the task's creation.
    BILLED = "billed"
    # Reads and costs nothing: every transient failure (429, 5xx, timeout, a lost connection) is retried.
    LOOKUP = "lookup"


class Body(BaseModel):
    """What is sent to one endpoint. Unset fields are left off the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class TaskBody(Body):
    """The body of an endpoint upstream runs as a task: it may answer at once and report elsewhere."""

    # Answer at once with the task id (callback mode), instead of holding the connection.
    asynchronous: bool | None = Field(None, alias="async")
    # Where upstream POSTs the task's progress and end (callback mode, ``jobs.callbacks``).
    callback_url: str | None = None


class ImagineBody(TaskBody):
    """``/midjourney/imagine``: a new grid (``generate``) or an action on an image (``image_id``)."""

    action: str = "generate"
    prompt: str | None = None
    image_id: str | None = None
    # variation_region: base64 of a greyscale image the size of the source, white = repaint.
    mask: str | None = None
    mode: Mode | None = None
    translation: bool | None = None


class EditsBody(TaskBody):
    """``/midjourney/edits``: repaint any picture by URL, wholly or where ``mask`` is white."""

    action: Literal["generate"] = "generate"
    image_url: str
    prompt: str
    mask: str | None = None
    mode: Mode | None = None
    split_images: bool | None = None


class VideosBody(TaskBody):
    """``/midjourney/videos``: four clips from a still (``generate``), or one of four extended (``extend``)."""

    action: Literal["generate", "extend"] = "generate"
    prompt: str | None = None
    image_url: str | None = None
    end_image_url: str | None = None
    video_id: str | None = None
    video_index: int | None = Field(None, ge=0, le=3)
    mode: Literal["fast", "turbo"] | None = None
    resolution: Literal["480p", "720p"] | None = None
    loop: bool | None = None


class DescribeBody(Body):
    """``/midjourney/describe``: an image, for four prompts."""

    image_url: str


class SeedBody(Body):
    """``/midjourney/seed``: a finished image, for its seed."""

    image_id: str


class ShortenBody(Body):
    """``/midjourney/shorten``: a prompt, for shorter ones."""

    prompt: str


class TranslateBody(Body):
    """``/midjourney/translate``: a prompt, in English."""

    content: str


class RetrieveBody(Body):
    """``/midjourney/tasks`` ``retrieve``: one task by id (``{}`` when unknown)."""

    action: Literal["retrieve"] = "retrieve"
    id: str


class RetrieveBatchBody(Body):
    """``/midjourney/tasks`` ``retrieve_batch``: tasks newest first, a page at a time."""

    action: Literal["retrieve_batch"] = "retrieve_batch"
    ids: list[str] | None = None
    offset: int | None = None
    limit: int | None = None
    # Filters the vendor's own front-end sends; not in the OpenAPI description (docs/upstream.md).
    created_at_min: float | None = None
    type: str | None = None


B = TypeVar("B", bound=Body, covariant=True)
R = TypeVar("R", bound=BaseModel, covariant=True)


@dataclass(frozen=True)
class Endpoint(Generic[B, R]):
    """One upstream endpoint: where a body goes, what answers, and how failures are retried."""

    name: str
    path: str
    body: type[B]
    reply: type[R]
    retry: Retry
    # Answers as application/x-ndjson, one reply object per progress change.
    streams: bool = False
    # Upstream's ``type`` of the tasks it keeps for this endpoint (what a lost submit is looked for
    # among); None when it keeps none.
    task_type: str | None = None
    # The request fields upstream keeps in a task's ``request`` that tell our submit from others.
    fingerprint: tuple[str, ...] = ()
    # What upstream takes a left-out fingerprint field to be.
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint_of(self, body: Body) -> dict[str, Any]:
        """The fingerprint of a body as it is sent: what a lost submit is recognised by, later."""
        sent = {**self.defaults, **body.wire()}
        return {name: sent.get(name) for name in self.fingerprint}

    def recorded_as(self, recorded: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> bool:
        """Whether a task's recorded ``request`` is the submit with this fingerprint: every field
        agrees, a left-out one taken as upstream's default, an empty one as absent."""
        seen = {**self.defaults, **recorded}
        return all((seen.get(name) or None) == (fingerprint.get(name) or None) for name in self.fingerprint)


IMAGINE = Endpoint(
    "imagine",
    "/midjourney/imagine",
    ImagineBody,
    TaskUpdate,
    Retry.BILLED,
    streams=True,
    task_type="imagine",
    fingerprint=("action", "prompt", "image_id"),
    defaults={"action": "generate"},
)
EDITS = Endpoint(
    "edits",
    "/midjourney/edits",
    EditsBody,
    TaskUpdate,
    Retry.BILLED,
    streams=True,
    task_type="edits",
    fingerprint=("action", "prompt", "image_url"),
    defaults={"action": "generate"},
)
VIDEOS = Endpoint(
    "videos",
    "/midjourney/videos",
    VideosBody,
    TaskUpdate,
    Retry.BILLED,
    streams=True,
    task_type="videos",
    fingerprint=("action", "prompt", "image_url", "video_id", "video_index"),
    defaults={"action": "generate"},
)
# Answers at once, and upstream keeps the answer as a task of type describe: a describe that lost its
# connection is found among recent tasks like any submit (docs/upstream.md).
DESCRIBE = Endpoint(
    "describe",
    "/midjourney/describe",
    DescribeBody,
    DescribeReply,
    Retry.BILLED,
    task_type="describe",
    fingerprint=("image_url",),
)
SEED = Endpoint("seed", "/midjourney/seed", SeedBody, SeedReply, Retry.BILLED, fingerprint=("image_id",))
SHORTEN = Endpoint("shorten", "/midjourney/shorten", ShortenBody, ShortenReply, Retry.BILLED, fingerprint=("prompt",))
TRANSLATE = Endpoint(
    "translate", "/midjourney/translate", TranslateBody, TranslateReply, Retry.BILLED, fingerprint=("content",)
)
RETRIEVE = Endpoint("retrieve", "/midjourney/tasks", RetrieveBody, UpstreamTask, Retry.LOOKUP)
RETRIEVE_BATCH = Endpoint("retrieve_batch", "/midjourney/tasks", RetrieveBatchBody, TaskBatch, Retry.LOOKUP)

ENDPOINTS: dict[str, Endpoint[Body, BaseModel]] = {
    e.name: e for e in (IMAGINE, EDITS, VIDEOS, DESCRIBE, SEED, SHORTEN, TRANSLATE, RETRIEVE, RETRIEVE_BATCH)
}
# The endpoints upstream runs as tasks: what a record's job submits and follows.
TASK_ENDPOINTS: dict[str, Endpoint[TaskBody, TaskUpdate]] = {"imagine": IMAGINE, "edits": EDITS, "videos": VIDEOS}
