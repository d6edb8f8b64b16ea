"""The image registry: per workspace, short readable names for every result, with lineage.

The model says ``lamborghini-volcano.v2.u4`` instead of a 19-digit image_id and a 500-character URL.
A name is reserved when a job is submitted, so it can be referred to while the job runs; the job's
updates then fill the record in. References resolve a name, an image_id or a task_id.
"""

from __future__ import annotations

import difflib
import re
import time
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from .core import actions
from .core.actions import Kind
from .core.prompt import parse
from .errors import InvalidInput, NameTaken, UnknownReference
from .upstream.models import TaskRecord, TaskUpdate

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME = 64
_STOP = frozenset(
    "a an the of in on at to for from with without and or but by into onto over under is are was be "
    "this that these those its it as very some any style photo image picture of detailed highly".split()
)

Status = Literal["running", "completed", "failed"]


class ErrorInfo(BaseModel):
    code: str
    message: str


class ImageRecord(BaseModel):
    """Everything known about one task and the image it makes."""

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
    parent: str | None = None
    action: str = "generate"
    prompt: str | None = None
    sources: list[str] = Field(default_factory=list, description="image references used as image prompts")
    error: ErrorInfo | None = None
    created_at: float = Field(default_factory=time.time)
    _job: object | None = PrivateAttr(default=None)  # the server's background job filling this in

    @property
    def final(self) -> bool:
        return self.status != "running"

    def apply(self, update: TaskUpdate) -> None:
        """Fold one upstream update in. Only a final update's image_id and actions are kept:
        intermediate stream lines carry throwaway ids and previews that upstream destroys."""
        if update.task_id:
            self.task_id = update.task_id
        if update.failed:
            exc = update.failure()
            self.fail(exc.code, exc.message)
            return
        if update.progress is not None:
            self.progress = max(self.progress, update.progress)
        if update.final:
            self.status = "completed"
            self.progress = 100.0
            self.image_id = update.image_id
            self.image_url = update.image_url
            self.raw_image_url = update.raw_image_url or update.image_url
            self.width, self.height = update.image_width, update.image_height
            self.raw_width = update.raw_image_width or update.image_width
            self.raw_height = update.raw_image_height or update.image_height
            self.actions = list(update.actions)
            known = actions.BY_NAME.get(self.action)
            self.kind = known.makes if known else actions.kind_of(self.actions)

    def fail(self, code: str, message: str) -> None:
        self.status = "failed"
        self.error = ErrorInfo(code=code, message=message)


def slug(prompt: str | None, fallback: str = "image") -> str:
    """Two longest content words of the prompt's text, in order: "Lamborghini speeds inside a
    volcano" -> "lamborghini-volcano". Long words tell an image apart better than short ones; on a
    tie the later word wins, since English puts the noun after its adjective ("red fox" -> fox)."""
    text = parse(prompt or "").text
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1]
    if not words:
        return fallback
    top = sorted(range(len(words)), key=lambda i: (-len(words[i]), -i))[:2]
    return "-".join(words[i][:16] for i in sorted(top))


class Workspace:
    """One client's images, by name, in creation order; at most ``max_records`` of them, the oldest
    finished ones forgotten first (a running one never is: its job still reports into it)."""

    def __init__(self, max_records: int = 500) -> None:
        self.records: dict[str, ImageRecord] = {}
        self.max_records = max_records

    def __len__(self) -> int:
        return len(self.records)

    def _unique(self, base: str) -> str:
        base = base[:MAX_NAME]
        if base not in self.records:
            return base
        n = 2
        while True:
            suffix = f"-{n}"
            candidate = base[: MAX_NAME - len(suffix)] + suffix
            if candidate not in self.records:
                return candidate
            n += 1

    def new_name(self, *, requested: str | None, parent: str | None = None, action: str = "generate",
                 prompt: str | None = None, fallback: str = "image") -> str:
        """A caller's name as is (if valid and free), else one showing lineage: parent.suffix."""
        if requested is not None:
            if not NAME_RE.match(requested):
                raise InvalidInput(f"name {requested!r} is not allowed",
                                   next_step="Use 1-64 of a-z 0-9 . _ - starting with a letter or digit.")
            if requested in self.records:
                raise NameTaken(f"name {requested!r} is taken", next_step="Pick another name, or omit name for a generated one.")
            return requested
        if parent is None:
            return self._unique(slug(prompt, fallback))
        segments = parent.split(".") + [actions.get(action).suffix]
        while len(".".join(segments)) > MAX_NAME - 3 and len(segments) > 2:
            del segments[1]  # keep the root and the newest steps of a deep lineage
        return self._unique(".".join(segments))

    def add(self, record: ImageRecord) -> ImageRecord:
        while record.name not in self.records and len(self.records) >= self.max_records:
            oldest = next((r for r in self.records.values() if r.final), None)
            if oldest is None:
                raise InvalidInput(f"all {len(self.records)} images of this session are still generating",
                                   next_step="Wait for some to finish (get_task with wait_seconds), then call again.")
            del self.records[oldest.name]
        self.records[record.name] = record
        return record

    def adopt(self, task: TaskRecord) -> ImageRecord:
        """Register a task started elsewhere (an earlier session, another client), named like our own."""
        action = str(task.request.get("action") or "generate")
        prompt = task.request.get("prompt")
        image_id = task.request.get("image_id")
        parent = self.find(str(image_id)) if image_id else None
        lineage = parent.name if parent and action in actions.BY_NAME else None
        name = self.new_name(requested=None, parent=lineage, action=action, prompt=prompt)
        return self.add(ImageRecord(name=name, task_id=task.id, action=action, prompt=prompt,
                                    parent=parent.name if parent else None))

    def discard(self, name: str) -> None:
        self.records.pop(name, None)

    def find(self, ref: str) -> ImageRecord | None:
        ref = ref.strip()
        if ref in self.records:
            return self.records[ref]
        for record in reversed(self.records.values()):
            if ref in (record.image_id, record.task_id):
                return record
        return None

    def resolve(self, ref: str) -> ImageRecord:
        record = self.find(ref)
        if record is None:
            raise self.unknown(ref)
        return record

    def unknown(self, ref: str) -> UnknownReference:
        """The error for a reference that resolves to nothing, with the names it may have meant."""
        close = difflib.get_close_matches(ref.strip().lower(), list(self.records), n=3, cutoff=0.5)
        if close:
            hint = "Did you mean " + ", ".join(close) + "?"
        elif self.records:
            hint = "Known: " + ", ".join(list(self.records)[-5:]) + "."
        else:
            hint = "No images yet in this session: start with imagine."
        return UnknownReference(f"no image or task {ref!r}", next_step=hint)


class Workspaces:
    """Workspaces by key: one per stdio process or in-process client, one per HTTP session."""

    def __init__(self, max_records: int = 500) -> None:
        self._by_key: dict[str, Workspace] = {}
        self.max_records = max_records

    def get(self, key: str) -> Workspace:
        ws = self._by_key.get(key)
        if ws is None:
            ws = self._by_key[key] = Workspace(self.max_records)
        return ws
