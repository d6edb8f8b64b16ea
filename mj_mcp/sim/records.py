"""What the simulator remembers: tasks, the images and videos they made, and how to draw each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.actions import Kind
from .geometry import Size


@dataclass(frozen=True)
class Recipe:
    """How to draw an image's raw pixels, deterministically (see render.py).

    ``key`` is unique per task, so a task's previews and its final image share one render.
    """

    key: str
    op: Literal["generate", "variation", "region", "zoom", "pan", "crop", "hq", "edit"]
    size: Size  # raw size
    seed: int
    text: str = ""
    urls: tuple[str, ...] = ()  # image prompts; an edit's picture
    source: str | None = None  # image_id of the image this one is derived from
    quadrant: int | None = None  # which quadrant of a grid source (crop, variationN)
    strength: float = 0.0  # how far a variation strays
    factor: float = 1.0  # zoom-out or upscale factor
    direction: str = ""  # pan direction
    mask: bytes | str | None = field(default=None, hash=False, compare=False)  # decoded bytes, or a URL


@dataclass
class SimImage:
    """A finished image: what upstream said about it, and what the simulator needs to follow up."""

    image_id: str
    task_id: str
    kind: Kind
    actions: tuple[str, ...]
    raw: Size
    thumb: Size
    cell: Size  # quadrant size for a grid, raw size for a single, the base single's size for an upscale
    recipe: Recipe
    text: str  # the prompt lineage, for reroll
    urls: tuple[str, ...]
    base_single: str | None = None  # for an upscale: the single it was made from (redo_upscale_*)
    secret: str = ""  # the random part of its URLs in an embedded simulator (cdn.py)


@dataclass(frozen=True)
class Footage:
    """How to draw a video's four clips (clips.py), deterministically: each starts on ``start`` (the
    picture at that URL), or, for an extension, on the ``index``-th clip of video ``parent``, which it
    replays before going on."""

    key: str
    size: Size  # frame size
    seed: int
    text: str = ""  # the prompt
    start: str = ""  # URL of the first frame's picture (generate)
    end: str = ""  # URL of the last frame's picture
    loop: bool = False  # the last frame returns to the first
    parent: str | None = None  # the video_id an extension extends
    index: int = 0  # which of the parent's clips
    segments: int = 1  # 1, plus one per extension in its lineage


@dataclass
class SimVideo:
    """A finished video: four clips, drawn from its footage when first fetched."""

    video_id: str
    task_id: str
    footage: Footage
    secret: str = ""  # the random part of its URLs in an embedded simulator (cdn.py)


@dataclass
class Plan:
    """A task's timeline in wall seconds, and how it ends."""

    start_delay: float
    interval: float
    steps: list[int]
    fail_at: int | None = None
    fail_code: str = "api_error"
    fail_message: str = "fetch failed"
    time_scale: float = 1.0  # for the callback delay and back-off


TaskType = Literal["imagine", "edits", "videos", "describe"]


@dataclass
class SimTask:
    id: str
    trace_id: str
    token: str
    request: dict[str, Any]  # the body as recorded, plus trace_id and stream
    created_at: float
    mode: str
    action: str
    base_url: str  # image URLs are built from the submitting request's own base URL
    plan: Plan
    type: TaskType = "imagine"  # the endpoint that took it, as task records name it
    kind: Kind | None = None
    recipe: Recipe | None = None
    # sizes and lineage of the image to register; a describe's descriptions
    result: dict[str, Any] = field(default_factory=dict)
    footage: Footage | None = None  # a video task's clips
    application_id: str | None = None
    callback_url: str | None = None
    stream: bool = False
    status: Literal["pending", "processing", "succeeded", "failed"] = "pending"
    progress: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    image_id: str | None = None
    video_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # every payload, in order; the final last
    final: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    aborted: bool = False  # reset or shutdown: listeners stop waiting
    changed: asyncio.Event | None = None
    job: asyncio.Task[None] | None = None
    mongo_id: str = ""
    secret: str = ""  # the random part of its preview URL in an embedded simulator (cdn.py)

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "failed")
