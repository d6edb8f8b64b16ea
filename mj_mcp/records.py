"""The record: everything mj-mcp keeps about one job, in one workspace, and what it made. Pure data.

A record is created (with its name reserved) before its request leaves the process, so everything a
user pays for is in the store first. While it runs, exactly one follower (``jobs``) advances it with
what it heard of the task (``advanced(record, heard)``; the jobs translate upstream's replies into a
``Heard``, so nothing here reads upstream's wire models); everyone else reads snapshots from the store.

A record has a result kind (``core.kinds.Kind``): a grid, single or upscaled image, four videos, a list
of texts, a seed. The kind decides when what upstream says finishes the job (``ends``), and what the
record's media are (``Record.media``: the URLs and MIME types the cache, resources, exports and
previews read). Records stored by earlier versions (image records of mj-mcp 0.2) load as they are: a
record without a kind is an image.

An edit (kind ``edits``) is one record of four media, its four results; when it completes, each result
becomes an image record of its own (kind ``edited``, named ``<edit>.1`` to ``.4``, its parent the edit),
made by ``results_of`` and stored in the same step as the completed edit (``Store.save(record, adding=)``),
so a result is never lost nor made twice: its id is the edit's with its number.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from .core import actions, naming
from .core.kinds import IMAGES, Kind

Status = Literal["running", "completed", "failed"]

# What a tool result shows of any record (``structuredContent``); the rest is bookkeeping.
PUBLIC_FIELDS = frozenset(
    {
        "name",
        "status",
        "progress",
        "kind",
        "task_id",
        "image_id",
        "image_url",
        "raw_image_url",
        "width",
        "height",
        "raw_width",
        "raw_height",
        "actions",
        "parent",
        "action",
        "prompt",
        "sources",
        "error",
        "created_at",
    }
)
# What a record of a kind shows besides (an image's seed, once asked for, too).
PUBLIC_BY_KIND: dict[Kind, frozenset[str]] = {
    Kind.VIDEOS: frozenset({"video_id", "videos"}),
    Kind.TEXTS: frozenset({"prompts"}),
    Kind.SEED: frozenset({"seed"}),
    Kind.EDITS: frozenset({"sub_images"}),
}
# The results of an edit: one each, numbered 1-4 in upstream's order (as a grid's quadrants are).
RESULT_NUMBERS = range(1, 5)
# What an edit's record (and its results) says was done: no action of the catalogue (``/edits`` has one
# of its own, ``generate``), and the lineage suffix of its name.
EDIT_ACTION = "edit"


# What a texts record is, read as a resource or written as a file: its texts, one a line.
TEXT_MIME = "text/plain"


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


class Handle(BaseModel):
    """A caller follows this job by polling it instead of waiting on its call (an MCP task): the job's
    record id is the handle, answered until ``ttl_s`` seconds after the record was created."""

    ttl_s: float


@dataclass(frozen=True)
class Medium:
    """One picture or clip a record holds: where upstream serves it, its type, and the key the cache
    keeps it under (stable within one upstream: the image or video id, else the URL)."""

    url: str
    mime: str
    key: str | None


class Outcome(BaseModel):
    """What a finished job made, each kind filling its own fields."""

    # An image (grid, single, upscaled), or a video's cover picture.
    image_id: str | None = None
    image_url: str | None = None
    raw_image_url: str | None = None
    width: int | None = None
    height: int | None = None
    raw_width: int | None = None
    raw_height: int | None = None
    actions: list[str] = Field(default_factory=list)
    # Four videos, in upstream's order.
    video_id: str | None = None
    videos: list[str] = Field(default_factory=list)
    # Texts: prompts for imagine, or a translation.
    prompts: list[str] = Field(default_factory=list)
    seed: str | None = None
    # An edit's four results, each one picture, in upstream's order (``sub_image_urls``).
    sub_images: list[str] = Field(default_factory=list)


class Heard(BaseModel):
    """What a follower heard of a task, in the record's terms (the jobs translate upstream's replies)."""

    task_id: str | None = None
    progress: float | None = None
    # Upstream says the task failed.
    error: ErrorInfo | None = None
    # Upstream says the task succeeded at full progress; ``ends`` judges whether the outcome is all there.
    succeeded: bool = False
    # The latest intermediate picture upstream streamed (destroyed once the task ends).
    preview_url: str | None = None
    outcome: Outcome = Field(default_factory=Outcome)


def _holds(kind: Kind | None) -> Callable[[Outcome], bool]:
    """What an outcome of this kind must carry to be the final one."""
    if kind is Kind.VIDEOS:
        return lambda o: bool(o.videos)
    if kind is Kind.TEXTS:
        return lambda o: bool(o.prompts)
    if kind is Kind.SEED:
        return lambda o: o.seed is not None
    # An edit's results come with its picture, in the one final reply; one that has no separate results
    # (split_images not honoured, a task adopted from elsewhere) ends with its picture alone, rather than
    # being followed for an hour for results that will never come.
    return lambda o: bool(o.image_url or o.sub_images)


def ends(kind: Kind | None, heard: Heard) -> bool:
    """Whether this is upstream's last word on a job of ``kind``: it failed, or it succeeded with what
    the kind makes (a grid without its image, or a video without its clips, is still under way)."""
    return heard.error is not None or (heard.succeeded and _holds(kind)(heard.outcome))


class Record(BaseModel):
    """One job and what it made, in one workspace."""

    # Never reused: lineage links and leases use it.
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    workspace: str = "default"
    name: str
    status: Status = "running"
    progress: float = 0.0
    kind: Kind | None = Field(
        None, description="grid (2x2, quadrants 1-4 from top-left), single, upscaled, videos, texts or seed"
    )
    task_id: str | None = None
    image_id: str | None = None
    image_url: str | None = None
    raw_image_url: str | None = None
    width: int | None = None
    height: int | None = None
    raw_width: int | None = None
    raw_height: int | None = None
    actions: list[str] = Field(default_factory=list, description="what apply_action accepts on this image")
    video_id: str | None = None
    videos: list[str] = Field(default_factory=list, description="the four clips' URLs, in upstream's order")
    prompts: list[str] = Field(default_factory=list, description="texts made: prompts, or a translation")
    seed: str | None = None
    sub_images: list[str] = Field(default_factory=list, description="an edit's four results' URLs, 1-4")
    # The parent's name when this was made (names of evicted records come back).
    parent: str | None = None
    # The parent's id: what lineage walks follow.
    parent_id: str | None = None
    action: str = "generate"
    prompt: str | None = None
    sources: list[str] = Field(default_factory=list, description="image references used as image prompts")
    error: ErrorInfo | None = None
    created_at: float = Field(default_factory=time.time)
    # When what it says last changed (progress, status), unix seconds; None: not since it was created.
    updated_at: float | None = None
    # A caller polls this job by its id (an MCP task); None: nobody asked to.
    handle: Handle | None = None
    # Kept while running: how to find a lost submit's task.
    submission: Submission | None = None
    # The latest intermediate preview upstream streamed, while running.
    preview_url: str | None = None
    # Callback mode: the sha256 of the secret in this task's callback URL.
    callback_key: str | None = None

    @property
    def final(self) -> bool:
        return self.status != "running"

    @property
    def is_image(self) -> bool:
        """Its result is one picture (a record of 0.2, with no kind yet, is an image too)."""
        return self.kind is None or self.kind in IMAGES

    @property
    def media(self) -> list[Medium]:
        """The pictures or clips it holds, full size: none until it completes, none for texts or a seed."""
        if self.status != "completed":
            return []
        if self.kind is Kind.VIDEOS:
            return [
                Medium(url, "video/mp4", f"{self.video_id}-{n}" if self.video_id else None)
                for n, url in enumerate(self.videos)
            ]
        if self.kind is Kind.EDITS and self.sub_images:
            # Upstream names a result by its URL alone: the cache keeps each under it, and so do the
            # result's own records (``results_of``), which share these media.
            return [Medium(url, "image/png", None) for url in self.sub_images]
        url = self.raw_image_url or self.image_url
        # An edit without separate results holds its one picture.
        if not (self.is_image or self.kind is Kind.EDITS) or not url:
            return []
        # A PNG, as upstream serves them; downloads are sniffed, and the type they have is the one kept.
        return [Medium(url, "image/png", self.image_id)]

    def as_text(self) -> str | None:
        """A completed texts record's texts, one a line (what its resource reads and its export writes;
        a text's own line breaks become spaces, so each line is one prompt); None for any other record."""
        if self.kind is not Kind.TEXTS or self.status != "completed":
            return None
        return "".join(" ".join(text.split()) + "\n" for text in self.prompts)

    def public(self) -> dict[str, object]:
        fields = PUBLIC_FIELDS | PUBLIC_BY_KIND.get(self.kind, frozenset()) if self.kind else PUBLIC_FIELDS
        if self.seed is not None:
            fields |= {"seed"}
        return self.model_dump(mode="json", include=set(fields))


def results_of(record: Record) -> list[Record]:
    """The image records a completed record makes besides itself: an edit's results, one per picture,
    named ``<edit>.1`` to ``.4`` (the first free name of each, when the store adds them), the edit their
    parent. Their ids follow from the edit's, so making them again (a save written again) finds them made.
    They carry no task_id or image_id: looking the task up finds the edit."""
    if record.kind is not Kind.EDITS or record.status != "completed":
        return []
    return [
        Record(
            id=f"{record.id}-{n}",
            workspace=record.workspace,
            name=naming.derived(parent=record.name, suffix=str(n)),
            status="completed",
            progress=100.0,
            kind=Kind.EDITED,
            image_url=url,
            raw_image_url=url,
            parent=record.name,
            parent_id=record.id,
            action=record.action,
            prompt=record.prompt,
            sources=record.sources,
        )
        for n, url in zip(RESULT_NUMBERS, record.sub_images, strict=False)
    ]


def advanced(record: Record, heard: Heard) -> Record:
    """The record after one thing heard of its task. Only the final outcome is kept: intermediate stream
    lines carry throwaway image ids and previews that upstream destroys."""
    if record.final:
        # A final record never moves again (a late or duplicated line changes nothing).
        return record
    changes: dict[str, object] = {}
    if heard.task_id and not record.task_id:
        changes["task_id"] = heard.task_id
    if heard.error is not None:
        return failed(record.model_copy(update=changes), heard.error.code, heard.error.message)
    if heard.progress is not None:
        changes["progress"] = max(record.progress, min(heard.progress, 100.0))
    if ends(record.kind, heard):
        outcome = heard.outcome
        changes.update(
            outcome.model_dump(),
            status="completed",
            progress=100.0,
            kind=_final_kind(record, outcome),
            submission=None,
            preview_url=None,
        )
    elif heard.preview_url:
        changes["preview_url"] = heard.preview_url
    return record.model_copy(update=changes)


def _final_kind(record: Record, outcome: Outcome) -> Kind | None:
    """An image's kind follows from its action (or, for a task adopted from elsewhere, from the actions
    upstream offers on it); any other kind is known from the start."""
    if not record.is_image:
        return record.kind
    known = actions.BY_NAME.get(record.action)
    return known.makes if known else actions.kind_of(outcome.actions) or record.kind


def failed(record: Record, code: str, message: str) -> Record:
    return record.model_copy(
        update={
            "status": "failed",
            "error": ErrorInfo(code=code, message=message),
            "submission": None,
            "preview_url": None,
        }
    )
