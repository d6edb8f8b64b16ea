"""The studio: the product's rules in plain Python, one async method per operation, no MCP.

- **plan** a request and validate it locally (``plan_imagine``, ``plan_action``, ``plan_blend``,
  ``plan_inpaint``): a wrong call costs nothing, because nothing is sent until ``start``;
- **start** it: reserve the name and store the record before the request leaves, then submit;
- **wait** for it with progress up to a deadline (the job goes on after), freeing the name when nothing
  exists upstream;
- **get** an image or task by name, image_id or task_id, adopting a task started elsewhere (unless
  another workspace holds it) and following again a running one nobody follows;
- **list_images** of a workspace, **export** one, and read its bytes and thumbnail;
- **picture** of an image for the MCP App's view: a display-size JPEG of the finished image, or of the
  partial picture upstream streams while it runs.

The MCP tools (``server/tools.py``) are thin adapters over these methods.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from PIL import UnidentifiedImageError

from . import errors, limits
from .core import actions, masks, naming, prompt as prompts
from .errors import ActionNotAllowed, FetchFailed, ImageUnavailable, InvalidInput, quote
from .jobs import Delivery, Jobs, Report, heard_of, kind_of_task
from .limits import Limits
from .media import export, previews
from .media.images import ImageStore, Preview
from .core.kinds import Kind
from .core.operations import APPLY_ACTION, GET_TASK, IMAGINE
from .records import Record, Submission, advanced
from .settings import Settings, default_export_dir
from .store import Store
from .upstream import Endpoint, TaskUpdate, UpstreamTask
from .upstream.registry import Upstreams
from .upstream import requests as endpoints
from .upstream.requests import ImagineBody, TaskBody
from .upstream.wire import classify
from .workspaces import Workspace

log = logging.getLogger("mj_mcp.studio")

MAX_PROMPT = 4000
MAX_WAIT = 3600
Mode = Literal["fast", "relax", "turbo"]
CATCH_UP_S = 15.0  # get_task on a record nobody followed: how long to wait for upstream's word on it
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what may be a task id (a UUID upstream); a lineage name is not
PICTURE_PX = (64, 2048)  # the view's pictures: long side bounds
PICTURES_KEPT_BYTES = 24 << 20  # renditions remembered (a 1024 px JPEG is 100-200 KB): polls and galleries decode once
PARTIAL_FETCH_S = 10.0  # a partial picture is a nicety: a poll never waits longer for one


@dataclass
class Plan:
    """A checked request: the record it will make (named, not stored yet) and the body to send."""

    record: Record
    endpoint: Endpoint[TaskBody, TaskUpdate]
    body: TaskBody
    requested_name: bool = False


@dataclass
class Listing:
    records: list[Record]
    total: int  # matching records, before the limit


@dataclass
class Exported:
    name: str
    path: str
    size: int
    mime: str


@dataclass
class Picture:
    """What the MCP App's view shows of an image: the record, and a JPEG of the finished image
    (``shown`` "final") or of upstream's latest partial one while it runs ("intermediate"); no JPEG
    when there is nothing to show yet or it cannot be had (the view keeps what it shows)."""

    record: Record
    jpeg: bytes | None = None
    shown: Literal["final", "intermediate"] | None = None


@dataclass
class Studio:
    settings: Settings
    store: Store
    upstreams: Upstreams
    jobs: Jobs
    images: ImageStore
    _workspaces: dict[str, Workspace] = field(default_factory=dict)
    _pictures: OrderedDict[tuple[str, int], bytes] = field(default_factory=OrderedDict)
    _decoders: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(2))

    def workspace(self, key: str, limits: Limits | None = None) -> Workspace:
        """The workspace ``key`` (a view over the store: cheap, and kept only while few), with the
        limits of its principal (None: the local user, who has none)."""
        ws = self._workspaces.get(key)
        if ws is None:
            if len(self._workspaces) >= 256:
                self._workspaces.clear()
            ws = self._workspaces[key] = Workspace(self.store, key, self.settings.max_images)
        ws.limits = limits  # the team file may have changed them since
        return ws

    # --- plan: local checks, nothing sent -------------------------------------------------------

    async def plan_imagine(self, ws: Workspace, *, prompt: str, images: list[str] | None = None,
                           aspect_ratio: str | None = None, mode: Mode = "fast", translation: bool = False,
                           name: str | None = None) -> Plan:
        parsed = _checked_prompt(prompt)
        if aspect_ratio and parsed.flag("ar") is not None:
            raise InvalidInput("--ar is both in the prompt and aspect_ratio", next_step="Keep one of the two.")
        refs = [await self._image_url(ws, r) for r in images or []]
        if len(refs) + len(parsed.urls) > prompts.MAX_IMAGE_URLS:
            raise InvalidInput(f"{len(refs) + len(parsed.urls)} image prompts; at most {prompts.MAX_IMAGE_URLS}")
        text = prompts.compose([u for u, _ in refs], prompt, [("ar", aspect_ratio)] if aspect_ratio else [])
        record = Record(name=await ws.free_name(requested=name, prompt=prompt), prompt=text, kind=Kind.GRID,
                        sources=[label for _, label in refs])
        body = ImagineBody(prompt=text, mode=mode, translation=True if translation else None)
        return Plan(record, endpoints.IMAGINE, body, name is not None)

    async def plan_action(self, ws: Workspace, *, image: str, action: str, mode: Mode = "fast",
                          name: str | None = None) -> Plan:
        source = await self._finished(ws, image)
        entry = actions.BY_NAME.get(action)
        if entry is None or entry.tool != APPLY_ACTION:
            raise InvalidInput(f"unknown action {quote(action)}", next_step=f"Use one of: {', '.join(source.actions)}.")
        if not actions.allowed_on(entry, source.actions, source.kind):
            raise ActionNotAllowed(f"{action} is not available on {source.name}",
                                   next_step=f"Use one of: {', '.join(source.actions) or 'none'}.")
        record = Record(name=await ws.free_name(requested=name, parent=source.name, action=action), kind=entry.makes,
                        parent=source.name, parent_id=source.id, action=action, prompt=source.prompt)
        return Plan(record, endpoints.IMAGINE, ImagineBody(action=action, image_id=source.image_id, mode=mode), name is not None)

    async def plan_blend(self, ws: Workspace, *, images: list[str], prompt: str | None = None,
                         aspect_ratio: str | None = None, mode: Mode = "fast", name: str | None = None) -> Plan:
        if not 2 <= len(images) <= prompts.MAX_IMAGE_URLS:
            raise InvalidInput(f"a blend takes 2-{prompts.MAX_IMAGE_URLS} images, not {len(images)}")
        parsed = _checked_prompt(prompt or "")
        if parsed.urls:
            raise InvalidInput("put images in images=, not in the prompt")
        if aspect_ratio and parsed.flag("ar") is not None:
            raise InvalidInput("--ar is both in the prompt and aspect_ratio", next_step="Keep one of the two.")
        refs = [await self._image_url(ws, r) for r in images]
        text = prompts.compose([u for u, _ in refs], prompt or "", [("ar", aspect_ratio)] if aspect_ratio else [])
        roots = list(dict.fromkeys(label.split(".")[0] for _, label in refs if not label.startswith("https://")))[:2]
        base = naming.slug(prompt) if parsed.text else "-".join(["blend", *roots])
        record = Record(name=await ws.free_name(requested=name, fallback=base), prompt=text, kind=Kind.GRID,
                        sources=[label for _, label in refs])
        return Plan(record, endpoints.IMAGINE, ImagineBody(prompt=text, mode=mode), name is not None)

    async def plan_inpaint(self, ws: Workspace, *, image: str, region: list[masks.Shape] | None = None,
                           mask: str | None = None, prompt: str | None = None, name: str | None = None) -> Plan:
        if (region is None) == (mask is None):
            raise InvalidInput("give exactly one of region and mask")
        source = await self._finished(ws, image)
        if not actions.allowed_on(actions.get("variation_region"), source.actions, source.kind):
            raise ActionNotAllowed(
                f"{source.name} is a {source.kind or 'unknown'} image; only a single image can be repainted",
                next_step=f'Upscale a quadrant first: {APPLY_ACTION}(image="{source.name}", action="upscale1").')
        if not (source.raw_width and source.raw_height):
            raise InvalidInput(f"the size of {source.name} is unknown, so no mask can be made")
        if prompt:
            _checked_prompt(prompt)
        width, height = source.raw_width, source.raw_height
        # Decoding an upload and rasterising shapes are CPU work, bounded in masks.build: off the event loop.
        encoded, _ = await anyio.to_thread.run_sync(
            lambda: masks.build(region=region, mask=mask, width=width, height=height))
        repaint = actions.get("variation_region")
        record = Record(name=await ws.free_name(requested=name, parent=source.name, action=repaint.name),
                        parent=source.name, parent_id=source.id, action=repaint.name, kind=repaint.makes,
                        prompt=prompt or source.prompt)
        body = ImagineBody(action="variation_region", image_id=source.image_id, mask=encoded, prompt=prompt or None)
        return Plan(record, endpoints.IMAGINE, body, name is not None)

    # --- start, wait, get -----------------------------------------------------------------------

    async def start(self, ws: Workspace, plan: Plan) -> Record:
        """Store the record (its name reserved, what is sent fingerprinted) and submit in the background;
        a principal's limits are checked first (``limits.py``), so a refusal sends nothing."""
        sent = Submission(endpoint=plan.endpoint.name, fingerprint=plan.endpoint.fingerprint_of(plan.body))
        record = plan.record.model_copy(update={"submission": sent})

        async def keep(record: Record) -> Record:
            counted = stored = None
            try:
                if ws.limits is not None:
                    counted = await limits.take_daily(self.store, ws.key, ws.limits)
                stored = await ws.reserve(record, requested=plan.requested_name)
                if ws.limits is not None:
                    await limits.check_running(self.store, ws.key, ws.limits)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if stored is not None:
                        await ws.discard(stored)
                    if counted is not None:
                        await limits.give_back(self.store, counted)
                raise
            return stored

        return await self.jobs.start(record, plan.endpoint, plan.body, keep)

    async def wait(self, ws: Workspace, record: Record, seconds: float, report: Report) -> Record:
        """Follow ``record`` with progress for at most ``seconds``; the job goes on after. A failure
        before upstream named a task frees the name and raises; a failed task returns the record."""
        watched = await self.jobs.watch(record, seconds, report)
        record = watched.record
        if record.status == "failed" and record.task_id is None:
            # Nothing exists upstream: the name is free again.
            await ws.discard(record)
            raise watched.error or failure_of(record)
        return record

    async def get(self, ws: Workspace, ref: str) -> tuple[Record, bool]:
        """The record ``ref`` names, and whether it was just adopted: a task started elsewhere, found by
        its task_id. A running record that nobody follows is followed again, after one look upstream."""
        record = await ws.find(ref)
        adopted = record is None
        if record is None:
            record = await self._adopt(ws, ref.strip())
        return await self.jobs.get(record, catch_up_s=CATCH_UP_S), adopted

    def ending(self, record: Record) -> Callable[[], Awaitable[Record]] | None:
        """When this process follows the record's job: a wait for its end (``Jobs.ending``)."""
        return self.jobs.ending(record.id)

    async def callback_record(self, record_id: str, secret: str) -> Record | None:
        """Callback mode: the record a callback URL names, when its secret is that record's."""
        return await self.jobs.callback_record(record_id, secret)

    async def deliver_callback(self, record: Record, body: bytes) -> Delivery:
        """Callback mode: what upstream POSTed for ``record``, left for its follower."""
        return await self.jobs.deliver_callback(record, body)

    async def _adopt(self, ws: Workspace, ref: str) -> Record:
        """A task started elsewhere (another session, another client) by its task_id, unless a workspace in
        the store holds it (as a task or an image): one user never adopts another's."""
        if not _TASK_ID.match(ref) or await self.store.owner_of(ref) is not None:
            raise await ws.unknown(ref)
        task = await self.upstreams.for_workspace(ws.key).retrieve(ref)  # their own account's tasks
        if task is None:
            raise await ws.unknown(ref)
        return await self._register(ws, task)

    async def _register(self, ws: Workspace, task: UpstreamTask) -> Record:
        """A record of a task started elsewhere (an earlier session, another client), named like our own."""
        action = str(task.request.get("action") or "generate")
        prompt = task.request.get("prompt")
        prompt = prompt if isinstance(prompt, str) else None
        image_id = task.request.get("image_id")
        parent = await ws.find(str(image_id)) if image_id else None
        known = actions.BY_NAME.get(action)
        name = await ws.free_name(requested=None, parent=parent.name if parent and known else None, action=action,
                                  prompt=prompt)
        record = Record(name=name, task_id=task.id, action=action if known else "generate", prompt=prompt,
                        kind=kind_of_task(task) or (known.makes if known else None),
                        parent=parent.name if parent else None, parent_id=parent.id if parent else None)
        if task.response is not None:
            # What upstream said already: no follower needs to ask again.
            record = advanced(record, heard_of(task.update))
        return await ws.reserve(record, requested=False)

    # --- list, export, pictures -----------------------------------------------------------------

    async def list_images(self, ws: Workspace, *, limit: int = 20, lineage_of: str | None = None) -> Listing:
        records = await (ws.lineage(lineage_of) if lineage_of is not None else ws.latest())
        return Listing(records=records[:limit], total=len(records))

    async def export(self, ws: Workspace, *, image: str, path: str, overwrite: bool = False) -> Exported:
        record = await ws.resolve(image)
        data, mime = await self.images.original(record)  # ImageUnavailable says why, and what to do
        folder = self._export_dir(ws)
        file = await anyio.to_thread.run_sync(lambda: export.save(folder, path, data, mime, overwrite=overwrite))
        return Exported(name=record.name, path=str(file), size=len(data), mime=mime)

    def _export_dir(self, ws: Workspace) -> Path | None:
        """The local user's exports go to the export directory (None: the default); an authenticated
        principal's to a folder of its own inside it, so that no principal replaces, or learns the
        names of, another's files."""
        if ws.key == self.settings.workspace:
            return self.settings.export_dir
        base = self.settings.export_dir if self.settings.export_dir is not None else default_export_dir()
        return Path(base) / "principals" / hashlib.sha256(ws.key.encode()).hexdigest()[:24]

    async def original(self, ws: Workspace, name: str) -> tuple[bytes, str]:
        """A finished image's full-size bytes and MIME type (from the cache, else downloaded once)."""
        record = await ws.find(name)
        if record is None:
            raise await ws.unknown(name)
        return await self.images.original(record)

    async def preview(self, record: Record) -> Preview:
        return await self.images.preview(record)

    async def picture(self, ws: Workspace, ref: str, *, max_px: int = 1024) -> Picture:
        """The MCP App's picture of ``ref``, its long side at most ``max_px``. A host's CSP keeps the
        view from the CDN's URLs, so its pixels come from here: the finished image from the image store
        (cached on disk), a partial one from its short-lived URL; the last renditions are kept, so the
        view's polls and a gallery's thumbnails cost one decode each."""
        record = await self.jobs.current(await ws.resolve(ref))
        px = min(max(max_px, PICTURE_PX[0]), PICTURE_PX[1])
        try:
            if record.status == "completed":
                url = record.media[0].url if record.media else None
                jpeg = await self._rendition(f"final:{record.image_id}:{url}", px, lambda: self.images.original(record))
                return Picture(record, jpeg, "final")
            if record.status == "running" and record.preview_url:
                partial = record.preview_url
                # The URL may stay the same from step to step while its picture sharpens: the progress is in the key.
                jpeg = await self._rendition(f"partial:{record.progress:g}:{partial}", px, lambda: self._partial(ws, partial))
                return Picture(record, jpeg, "intermediate")
        except (ImageUnavailable, FetchFailed, TimeoutError, UnidentifiedImageError, OSError, ValueError) as exc:
            log.info("no picture of %s: %s", record.name, type(exc).__name__)
        return Picture(record)

    async def _partial(self, ws: Workspace, url: str) -> tuple[bytes, str]:
        data, ctype = await self.upstreams.for_workspace(ws.key).fetch_image(url, timeout=PARTIAL_FETCH_S)
        return data, ctype or ""

    async def _rendition(self, key: str, px: int, load: Callable[[], Awaitable[tuple[bytes, str]]]) -> bytes:
        made = self._pictures.get((key, px))
        if made is not None:
            self._pictures.move_to_end((key, px))
            return made
        data, _ = await load()
        jpeg = await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=False), limiter=self._decoders)
        self._pictures[(key, px)] = jpeg
        while sum(map(len, self._pictures.values())) > PICTURES_KEPT_BYTES and len(self._pictures) > 1:
            self._pictures.popitem(last=False)
        return jpeg

    # --- helpers ----------------------------------------------------------------------------------

    async def _image_url(self, ws: Workspace, ref: str) -> tuple[str, str]:
        """(url, source label) for an image prompt: a stored image's full-size URL, or an https URL."""
        if ref.lower().startswith("https://"):
            if not prompts.IMAGE_URL.match(ref):  # composed into the prompt: one bounded token, no flags
                raise InvalidInput(f"{quote(ref)} is not one https URL of at most {prompts.MAX_URL_CHARS} characters",
                                   next_step="Give the image's URL alone, without spaces, or an image name.")
            return ref, ref
        if ref.lower().startswith("http://"):
            raise InvalidInput(f"{quote(ref)} is not https", next_step="Use an https URL or an image name.")
        record = await ws.resolve(ref)
        if not record.is_image:
            raise InvalidInput(f"{record.name} is {record.kind}, not an image", next_step="Give an image's name.")
        if not record.media:
            raise InvalidInput(f"{record.name} has no finished image yet", next_step=f'Call {GET_TASK}("{record.name}").')
        return record.media[0].url, record.name

    async def _finished(self, ws: Workspace, ref: str) -> Record:
        record = await self.jobs.current(await ws.resolve(ref))
        if record.status == "running":
            raise InvalidInput(f"{record.name} is still generating ({record.progress:.0f}%)",
                               next_step=f'Call {GET_TASK}("{record.name}") until it is ready.')
        if record.status == "failed" or not record.image_id:
            raise InvalidInput(f"{record.name} failed and has no image to act on",
                               next_step=f"Start again from another image or with {IMAGINE}.")
        return record


def _checked_prompt(text: str) -> prompts.Parsed:
    if len(text) > MAX_PROMPT:
        raise InvalidInput(f"prompt is {len(text):,} characters; at most {MAX_PROMPT}")
    parsed = prompts.parse(text)
    problems = prompts.problems(parsed)
    if problems:
        raise InvalidInput("prompt refused before sending: " + "; ".join(problems) + ".",
                           next_step="Fix the flags and call again.")
    return parsed


def failure_of(record: Record) -> errors.UpstreamError:
    """The error a failed record stands for: a task upstream failed, or a request it refused."""
    err = record.error
    code, message = (err.code, err.message) if err else ("api_error", "no message")
    if record.task_id is not None:
        return errors.TaskFailed(message, code=code)
    return classify(code, None)(message, code=code)
