"""The studio: the product's rules in plain Python, no MCP.

``Studio.open(settings)`` builds everything a running server holds (the store, the upstream clients,
the jobs and their watchdog, the media; without an API token, the embedded simulator) and yields a
``Studio``, so the rules run, and are tested, without any MCP server::

    async with Studio.open(settings) as studio:
        call = studio.call("default")
        grid = await imagine(call, prompt="a red fox in snow")
        single = await apply_action(call, image=grid.name, action="upscale2")

Each operation is a module of this package, one async function each (``calls.py`` says how they are
written): ``imagine``, ``action`` (apply_action; ``extend`` plans its video actions), ``blend``,
``inpaint`` (inpaint_region), ``edit`` (edit_image), ``describe``, ``rewrite`` (rewrite_prompt),
``animate``, ``get`` (get_task; ``seed.py`` its seed), ``listing`` (list_images), ``export``
(export_image), ``picture`` (the App's view_image). ``plans.py`` holds the local checks they share. The
``Studio`` object holds what they share: the workspaces, and the steps of every job (store first, start,
wait, get), over ``Jobs``.

Adding an operation: its endpoint in ``upstream/requests.py``, its row in ``core/operations.py``, and
one module here whose function is filed with ``@runs(tool)``; the server registers it as a tool.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from pydantic import SecretStr

from .. import limits
from ..core import actions
from ..core.kinds import Kind
from ..errors import ImageUnavailable
from ..jobs import Jobs, Report, heard_of, kind_of_task
from ..limits import Limits
from ..media import Media, Poster, Preview
from ..media.cache import image_caches
from ..records import EDIT_ACTION, TEXT_MIME, Record, Submission, advanced, results_of
from ..settings import Settings
from ..store import Hold, Store, open_store
from ..upstream import Upstream, UpstreamTask
from ..upstream.registry import Upstreams
from ..workspaces import Workspace
from . import (
    action,
    animate,
    blend,
    consent,
    describe,
    edit,
    export,
    extend,
    get,
    imagine,
    inpaint,
    listing,
    picture,
    rewrite,
)
from .calls import MAX_PROMPT, MAX_WAIT, TOOL_FUNCTIONS, Call, ImageRef, Mode, Name, Progress, Wait, runs
from .export import Exported
from .listing import Listing
from .picture import PICTURE_PX, Picture
from .plans import Plan, failure_of

__all__ = [
    "MAX_PROMPT",
    "MAX_WAIT",
    "PICTURE_PX",
    "TOOL_FUNCTIONS",
    "Call",
    "Exported",
    "ImageRef",
    "Listing",
    "Mode",
    "Name",
    "Picture",
    "Plan",
    "Progress",
    "Studio",
    "Wait",
    "action",
    "animate",
    "blend",
    "consent",
    "describe",
    "edit",
    "export",
    "extend",
    "failure_of",
    "get",
    "imagine",
    "inpaint",
    "listing",
    "picture",
    "rewrite",
    "runs",
]

log = logging.getLogger("mj_mcp.studio")

# A get_task on a record nobody followed: how long to wait for upstream's word on it.
CATCH_UP_S = 15.0
# What may be a task id (a UUID upstream); a lineage name is not.
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Workspace views kept (each is a few fields over the store).
WORKSPACES_KEPT = 256
# The embedded simulator's render cache: two grids' pixels (16 MiB each) and some encoded files.
EMBEDDED_RENDER_CACHE_MB = 40


@dataclass
class Studio:
    settings: Settings
    store: Store
    upstreams: Upstreams
    jobs: Jobs
    media: Media
    _workspaces: dict[str, Workspace] = field(default_factory=dict)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, *, token_for: Callable[[str], str | None] | None = None
    ) -> AsyncIterator[Studio]:
        """A studio for these settings, with everything it holds running: the store, the upstream
        clients (``token_for(workspace)``: a workspace's own upstream token, else the operator's), the
        jobs with their watchdog (taking over the running records a previous process left), the media,
        and, in simulated mode without a standalone simulator, the embedded one (said loudly). On the
        way out the followers stop and release their leases, so the next start follows those jobs at once."""
        consent.check(settings.confirm)
        async with _upstream_of(settings) as (s, alias):
            store = await open_store(s.store_url)
            upstream = Upstream(s, api_alias=alias)
            # Every log record of the process, masked: tracebacks included.
            masking = upstream.redactor.log_filter
            upstream.redactor.install()
            try:
                async with anyio.create_task_group() as tg:
                    upstreams = Upstreams(upstream, token_for)
                    jobs = Jobs(upstreams, store, s, tg)
                    media = Media(
                        upstream, *image_caches(s.cache_dir, s.cache_mb << 20), preview_px=s.preview_px, background=tg
                    )
                    tg.start_soon(jobs.keep_leases)
                    try:
                        yield cls(s, store, upstreams, jobs, media)
                    finally:
                        # The followers stop; their leases are released for the next start.
                        tg.cancel_scope.cancel()
            finally:
                for handler in logging.getLogger().handlers:
                    handler.removeFilter(masking)
                await upstream.aclose()
                await store.close()

    def workspace(self, key: str, limits: Limits | None = None) -> Workspace:
        """The workspace ``key`` (a view over the store: cheap, and kept only while few), with the
        limits of its principal (None: the local user, who has none)."""
        ws = self._workspaces.get(key)
        if ws is None:
            if len(self._workspaces) >= WORKSPACES_KEPT:
                self._workspaces.clear()
            ws = self._workspaces[key] = Workspace(self.store, key, self.settings.max_images)
        # The team file may have changed them since.
        ws.limits = limits
        return ws

    def call(self, workspace: str | None = None, limits: Limits | None = None) -> Call:
        """A call in ``workspace`` (default: the local user's), with its principal's ``limits``; whoever
        wants its progress and news sets ``Call``'s hooks."""
        return Call(self, self.workspace(workspace or self.settings.workspace, limits))

    # --- a job's steps: store first, start, wait, get --------------------------------------------

    async def start(self, ws: Workspace, plan: Plan) -> Record:
        """Store the record (its name reserved, what is sent fingerprinted) and submit in the background;
        a principal's limits are checked first (``limits.py``), so a refusal sends nothing."""
        sent = Submission(endpoint=plan.endpoint.name, fingerprint=plan.endpoint.fingerprint_of(plan.body))
        record = plan.record.model_copy(update={"submission": sent})

        async def keep(record: Record, hold: Hold) -> Record:
            counted = stored = None
            try:
                if ws.limits is not None:
                    counted = await limits.take_daily(self.store, ws.key, ws.limits)
                stored = await ws.reserve(record, requested=plan.requested_name, hold=hold)
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

    async def _adopt(self, ws: Workspace, ref: str) -> Record:
        """A task started elsewhere (another session, another client) by its task_id, unless a workspace in
        the store holds it (as a task or an image): one user never adopts another's."""
        if not _TASK_ID.match(ref) or await self.store.owner_of(ref) is not None:
            raise await ws.unknown(ref)
        # Their own account's tasks.
        task = await self.upstreams.for_workspace(ws.key).retrieve(ref)
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
        name = await ws.name_for(
            requested=None, parent=parent.name if parent and known else None, action=action, prompt=prompt
        )
        kind = kind_of_task(task) or (known.makes if known else None)
        record = Record(
            name=name,
            task_id=task.id,
            action=EDIT_ACTION if kind is Kind.EDITS else action if known else "generate",
            prompt=prompt,
            kind=kind,
            parent=parent.name if parent else None,
            parent_id=parent.id if parent else None,
        )
        if task.response is None:
            return await ws.reserve(record, requested=False)
        # What upstream said already: no follower needs to ask again.
        done = advanced(record, heard_of(task.update))
        if not results_of(done):
            return await ws.reserve(done, requested=False)
        # What it made is stored with it, in one step: the record is reserved running (a watchdog would
        # finish it), then saved completed with its results under its final name.
        stored = await ws.reserve(record, requested=False)
        done = done.model_copy(update={"name": stored.name, "workspace": stored.workspace})
        await self.store.save(done, adding=results_of(done))
        return done

    def ending(self, record: Record) -> Callable[[], Awaitable[Record]] | None:
        """When this process follows the record's job: a wait for its end (``Jobs.ending``)."""
        return self.jobs.ending(record.id)

    # --- what the server reads besides the operations ---------------------------------------------

    async def original(self, ws: Workspace, name: str) -> tuple[bytes, str]:
        """What the record ``name`` holds, as its resource reads it (``content``)."""
        record = await ws.find(name)
        if record is None:
            raise await ws.unknown(name)
        if record.kind is Kind.EDITS:
            names = ", ".join(r.name for r in await ws.results(record)) or "none kept"
            raise ImageUnavailable(f"{record.name} is an edit of {len(record.media)} pictures; its results: {names}")
        return await self.content(record)

    async def content(self, record: Record) -> tuple[bytes, str]:
        """What a record holds, as bytes and a MIME type (its resource, its export): a finished image
        full size (from the cache, else downloaded once), or a texts record's texts, one a line."""
        text = record.as_text()
        if text is not None:
            return text.encode(), TEXT_MIME
        return await self.media.original(record)

    async def clip(self, ws: Workspace, name: str, n: int) -> tuple[bytes, str]:
        """Clip ``n`` (1-4) of a finished video: its MP4 bytes and MIME type (cached, else downloaded once)."""
        record = await ws.find(name)
        if record is None:
            raise await ws.unknown(name)
        return await self.media.clip(record, n)

    async def preview(self, record: Record) -> Preview:
        return await self.media.preview(record)

    async def poster(self, record: Record) -> Poster:
        """A finished video's poster for the model (its clips kept in the cache first)."""
        return await self.media.poster(record)

    async def callback_record(self, record_id: str, secret: str) -> Record | None:
        """Callback mode: the record a callback URL names, when its secret is that record's."""
        return await self.jobs.callback_record(record_id, secret)

    async def ring(self, record: Record) -> None:
        """Callback mode: upstream rang for ``record`` (the body is never read): its follower looks."""
        await self.jobs.ring(record)

    async def store_answers(self) -> None:
        """A real read of the store (a round trip to Redis or the file): raises when it does not answer."""
        await self.store.get("readyz")

    async def upstream_answers(self, timeout: float) -> bool:
        """Whether the API answers (any reply below 500), asked once, at no cost."""
        return await self.upstreams.default.reachable(timeout)


@asynccontextmanager
async def _upstream_of(settings: Settings) -> AsyncIterator[tuple[Settings, str | None]]:
    """The settings to run with, and the origin the upstream's image URLs name in place of its own: these
    settings and none, or, in simulated mode without a standalone simulator, the embedded one's address
    and token while it runs, and its fixed public origin (its port changes at every start; the URLs that
    records keep must not)."""
    if not (settings.simulate and settings.embed_sim):
        yield settings, None
        return
    # Only the simulated mode pays for importing it.
    from ..sim import PUBLIC_ORIGIN, SimConfig, SimServer

    token = secrets.token_urlsafe(24)
    # A small render cache: the media download each image once and keep it on disk, so the simulator needs
    # a grid's pixels again only for the upscales that follow it.
    config = SimConfig(
        tokens=[token],
        time_scale=settings.sim_time_scale,
        embedded=True,
        archive=sim_archive(settings.store_url),
        render_cache_mb=EMBEDDED_RENDER_CACHE_MB,
    )
    sim = SimServer(config)
    await anyio.to_thread.run_sync(sim.start)
    try:
        log.warning(
            "no ACEDATACLOUD_API_TOKEN: serving SIMULATED images from the embedded simulator at %s", sim.base_url
        )
        if not settings.store_url.startswith(("memory", "sqlite:")):
            log.warning(
                "a shared store with the embedded simulator: its tasks live in this process only, so "
                "other replicas cannot follow them; give every replica the same upstream"
            )
        yield settings.model_copy(update={"base_url": sim.base_url, "api_token": SecretStr(token)}), PUBLIC_ORIGIN
    finally:
        await anyio.to_thread.run_sync(sim.stop)


def sim_archive(store_url: str) -> str | None:
    """Where the embedded simulator keeps what it served: beside an SQLite store (``mj-mcp.db`` ->
    ``mj-mcp-simulator.db``), so its images live as long as the records naming them; None (memory
    only) beside the memory store, which forgets the records too, and beside Redis, which is shared."""
    if not store_url.startswith("sqlite:///"):
        return None
    path = Path(store_url.removeprefix("sqlite:///")).expanduser()
    return str(path.with_name(f"{path.stem}-simulator{path.suffix or '.db'}"))
