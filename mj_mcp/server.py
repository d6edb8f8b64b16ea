"""The MCP server: five typed tools over the jobs, the registry and the masks; no HTTP details.

Each tool validates locally before anything is sent (so a wrong call costs nothing), starts a job,
follows it with progress notifications, and answers with the registry record as structured content
plus a short text. Without a token the lifespan starts the embedded simulator and says so loudly.
"""

from __future__ import annotations

import base64
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server.apps import Apps
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field, SecretStr

from .catalog import ImageList, list_result
from .core import actions, masks, prompt as prompts
from .core.actions import FollowUp
from .errors import ActionNotAllowed, ExportRefused, ImageUnavailable, InvalidInput, MjMcpError
from .media import export
from .media.cache import ImageCache
from .media.images import URI_TEMPLATE, ImageStore, uri_for
from .settings import Settings
from .jobs import Job, Jobs
from .registry import ImageRecord, Workspace, Workspaces, slug
from .resources import ImageServer, notify_changed
from .results import ExportResult, ImageResult, error_result, export_result, image_result
from .upstream import Upstream
from .ui import UI_META, VIEW_URI, view_html
from .ui.pictures import Pictures

log = logging.getLogger("mj_mcp.server")

MAX_PROMPT = 4000
Mode = Literal["fast", "relax", "turbo"]
Name = Annotated[str | None, Field(description="Result name (default: derived)")]
ImageRef = Annotated[str, Field(description="Image name (or image_id, task_id)")]
MAX_WAIT = 3600
Wait = Annotated[float | None, Field(ge=0, le=MAX_WAIT, description="Answer status running after this many s (default 50); the job goes on")]
Result = Annotated[CallToolResult, ImageResult]
Plan = Callable[[Workspace], tuple[ImageRecord, dict[str, Any]]]  # a checked request, ready to send

# Only what differs from the spec's defaults (not read-only, destructive, not idempotent, open world):
# the hints are read on every turn too.
GENERATES = ToolAnnotations(destructive_hint=False)
READS = ToolAnnotations(read_only_hint=True)
LOCAL_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
LOCAL_WRITE = ToolAnnotations(idempotent_hint=True, open_world_hint=False)


@dataclass
class AppState:
    settings: Settings
    upstream: Upstream
    jobs: Jobs
    images: ImageStore
    pictures: Pictures
    workspaces: Workspaces = field(default_factory=Workspaces)


def _instructions(settings: Settings) -> str:
    text = ("Midjourney image generation (AceDataCloud API). imagine makes a 2x2 grid, quadrants 1-4 from "
            "top-left; apply_action upscales, varies, rerolls, zooms or pans an image; inpaint_region repaints "
            "part of a single image; blend mixes 2-5 images; get_task checks a job; list_images recalls the "
            "session's images; export_image saves one to a file. Every result has a short name: refer to images "
            "by it; finished ones come with a thumbnail and are resources at mj://images/<name>.")
    if settings.simulate:
        text += (" NOTE: no API token is configured, so images come from the built-in SIMULATOR (placeholder "
                 "pictures, not Midjourney). Set ACEDATACLOUD_API_TOKEN for real images.")
    return text


def _workspace(ctx: Context) -> Workspace:
    state: AppState = ctx.request_context.lifespan_context
    headers = ctx.headers or {}
    session = headers.get("mcp-session-id")
    return state.workspaces.get(f"http:{session}" if session else "default")


def build_server(settings: Settings) -> MCPServer:
    """An MCP server for these settings; the lifespan owns the HTTP client, jobs and registry."""

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppState]:
        s, sim = settings, None
        if s.simulate and s.embed_sim:
            from .sim import SimConfig, SimServer  # only the simulated mode pays for importing it

            token = secrets.token_urlsafe(24)
            sim = SimServer(SimConfig(tokens=[token], time_scale=s.sim_time_scale))
            await anyio.to_thread.run_sync(sim.start)
            s = s.model_copy(update={"base_url": sim.base_url, "api_token": SecretStr(token)})
            log.warning("no ACEDATACLOUD_API_TOKEN: serving SIMULATED images from the embedded simulator at %s",
                        sim.base_url)
        upstream = Upstream(s)
        try:
            async with anyio.create_task_group() as tg:
                cache = ImageCache(s.cache_dir, s.cache_mb << 20)
                images = ImageStore(upstream, cache, preview_px=s.preview_px)
                yield AppState(settings=s, upstream=upstream, jobs=Jobs(upstream, s, tg), images=images,
                               pictures=Pictures(images), workspaces=Workspaces(s.max_images))
                tg.cancel_scope.cancel()  # jobs still running die with the server
        finally:
            await upstream.aclose()
            if sim is not None:
                await anyio.to_thread.run_sync(sim.stop)

    def fail(exc: MjMcpError, record: ImageRecord | None = None) -> CallToolResult:
        return error_result(exc, simulated=settings.simulate, record=record)

    async def shown(ctx: Context, record: ImageRecord) -> CallToolResult:
        """The record's result; a finished image also gets its thumbnail and a link to the resource."""
        if record.status != "completed":
            return image_result(record, simulated=settings.simulate)
        state: AppState = ctx.request_context.lifespan_context
        preview = await state.images.preview(record)
        return image_result(record, simulated=settings.simulate, uri=uri_for(record.name),
                            preview=preview.jpeg, note=preview.note, mime=preview.mime)

    def attach(record: ImageRecord, start: Callable[[Callable[[Job], None]], Job]) -> Job:
        """Start a background job that fills ``record`` in as upstream reports, until it is done."""
        def on_change(job: Job) -> None:
            if job.task_id:
                record.task_id = job.task_id
            record.progress = max(record.progress, job.progress)
            if job.result is not None:
                record.apply(job.result)
            elif job.error is not None:
                record.fail(job.error.code, job.error.message)
            if job.done.is_set():
                record._job = None  # no follower any more; after a give-up, get_task attaches a new one

        job = start(on_change)
        record._job = job
        return job

    async def wait_for(ctx: Context, record: ImageRecord, job: Job, seconds: float) -> None:
        """Follow ``job`` with progress notifications for at most ``seconds``; the job goes on after."""
        state: AppState = ctx.request_context.lifespan_context

        async def report(progress: float, message: str) -> None:
            await ctx.report_progress(progress, 100, f"{record.name}: {message}")

        with anyio.move_on_after(seconds):
            await state.jobs.follow(job, report)

    async def generate(ctx: Context, plan: Plan, wait_seconds: float | None) -> CallToolResult:
        """Plan the request (local checks: nothing is sent if they fail), start the job, follow it
        with progress up to the deadline, and answer with the record: final, or still running."""
        state: AppState = ctx.request_context.lifespan_context
        ws = _workspace(ctx)
        try:
            record, body = plan(ws)
            ws.add(record)
        except MjMcpError as exc:
            return fail(exc)
        await notify_changed(ctx)
        job = attach(record, lambda hook: state.jobs.start(body, hook))
        await wait_for(ctx, record, job, settings.wait_s if wait_seconds is None else wait_seconds)
        await notify_changed(ctx)
        if job.error is not None:
            if record.task_id is None:
                ws.discard(record.name)  # nothing exists upstream: free the name
                return fail(job.error)
            return fail(job.error, record)  # a failed task keeps its record; point the model at it
        return await shown(ctx, record)

    def image_url(ref: str, ws: Workspace) -> tuple[str, str]:
        """(url, source label) for an image prompt: a registered image's full-size URL, or an https URL."""
        if ref.lower().startswith("https://"):
            return ref, ref
        if ref.lower().startswith("http://"):
            raise InvalidInput(f"{ref[:60]} is not https", next_step="Use an https URL or an image name.")
        record = ws.resolve(ref)
        if record.status != "completed" or not (record.raw_image_url or record.image_url):
            raise InvalidInput(f"{record.name} has no finished image yet", next_step=f'Call get_task("{record.name}").')
        return record.raw_image_url or record.image_url or "", record.name

    def finished(ref: str, ws: Workspace) -> ImageRecord:
        record = ws.resolve(ref)
        if record.status == "running":
            raise InvalidInput(f"{record.name} is still generating ({record.progress:.0f}%)",
                               next_step=f'Call get_task("{record.name}") until it is ready.')
        if record.status == "failed" or not record.image_id:
            raise InvalidInput(f"{record.name} failed and has no image to act on",
                               next_step="Start again from another image or with imagine.")
        return record

    def check_prompt_text(text: str) -> prompts.Parsed:
        if len(text) > MAX_PROMPT:
            raise InvalidInput(f"prompt is {len(text)} characters; at most {MAX_PROMPT}")
        parsed = prompts.parse(text)
        problems = prompts.problems(parsed)
        if problems:
            raise InvalidInput("prompt refused before sending: " + "; ".join(problems) + ".",
                               next_step="Fix the flags and call again.")
        return parsed

    async def imagine(
        ctx: Context,
        prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT, description="What to draw, then any of --v --s --c --q --seed --no --style raw --tile")],
        images: Annotated[list[str], Field(max_length=5, description="Image prompts: names or https URLs")] = [],  # noqa: B006
        aspect_ratio: Annotated[str | None, Field(pattern=r"^\d{1,2}:\d{1,2}$", description="W:H, e.g. 16:9")] = None,
        mode: Mode = "fast",
        translation: Annotated[bool, Field(description="Translate a non-English prompt")] = False,
        name: Name = None,
        wait_seconds: Wait = None,
    ) -> Result:
        """A 2x2 grid of four candidates from a prompt (quadrants 1-4 from top-left)."""
        # Midjourney's other options stay prompt flags, checked locally like every flag: typed copies
        # of them would cost the tool list a tenth of its budget and say nothing the flags do not.
        def plan(ws: Workspace) -> tuple[ImageRecord, dict[str, Any]]:
            parsed = check_prompt_text(prompt)
            if aspect_ratio and parsed.flag("ar") is not None:
                raise InvalidInput("--ar is both in the prompt and aspect_ratio", next_step="Keep one of the two.")
            refs = [image_url(r, ws) for r in images]
            if len(refs) + len(parsed.urls) > prompts.MAX_IMAGE_URLS:
                raise InvalidInput(f"{len(refs) + len(parsed.urls)} image prompts; at most {prompts.MAX_IMAGE_URLS}")
            text = prompts.compose([u for u, _ in refs], prompt, [("ar", aspect_ratio)] if aspect_ratio else [])
            record = ImageRecord(name=ws.new_name(requested=name, prompt=prompt), prompt=text,
                                 sources=[label for _, label in refs])
            body = {"action": "generate", "prompt": text, "mode": mode}
            if translation:
                body["translation"] = True
            return record, body

        return await generate(ctx, plan, wait_seconds)

    async def apply_action(
        ctx: Context,
        image: ImageRef,
        action: Annotated[FollowUp, Field(description="One of the image's actions (see its result)")],
        name: Name = None,
        mode: Mode = "fast",
        wait_seconds: Wait = None,
    ) -> Result:
        """Upscale, vary, reroll, zoom out or pan an earlier image."""
        def plan(ws: Workspace) -> tuple[ImageRecord, dict[str, Any]]:
            record = finished(image, ws)
            entry = actions.get(action)
            if not actions.allowed_on(entry, record.actions, record.kind):
                raise ActionNotAllowed(f"{action} is not available on {record.name}",
                                       next_step=f"Use one of: {', '.join(record.actions) or 'none'}.")
            child = ImageRecord(name=ws.new_name(requested=name, parent=record.name, action=action),
                                parent=record.name, action=action, prompt=record.prompt)
            body = {"action": action, "image_id": record.image_id, "mode": mode}
            return child, body

        return await generate(ctx, plan, wait_seconds)

    async def blend(
        ctx: Context,
        images: Annotated[list[str], Field(min_length=2, max_length=5, description="2-5 images: names or https URLs.")],
        prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="Text to steer the blend")] = None,
        aspect_ratio: Annotated[str | None, Field(pattern=r"^\d{1,2}:\d{1,2}$", description="W:H (--ar)")] = None,
        mode: Mode = "fast",
        name: Name = None,
        wait_seconds: Wait = None,
    ) -> Result:
        """Blend 2-5 images into a new 2x2 grid."""
        def plan(ws: Workspace) -> tuple[ImageRecord, dict[str, Any]]:
            parsed = check_prompt_text(prompt or "")
            if parsed.urls:
                raise InvalidInput("put images in images=, not in the prompt")
            if aspect_ratio and parsed.flag("ar") is not None:
                raise InvalidInput("--ar is both in the prompt and aspect_ratio", next_step="Keep one of the two.")
            refs = [image_url(r, ws) for r in images]
            text = prompts.compose([u for u, _ in refs], prompt or "", [("ar", aspect_ratio)] if aspect_ratio else [])
            roots = list(dict.fromkeys(label.split(".")[0] for _, label in refs if not label.startswith("https://")))[:2]
            base = slug(prompt) if parsed.text else "-".join(["blend", *roots])
            record = ImageRecord(name=ws.new_name(requested=name, fallback=base), prompt=text,
                                 sources=[label for _, label in refs])
            body = {"action": "generate", "prompt": text, "mode": mode}
            return record, body

        return await generate(ctx, plan, wait_seconds)

    async def inpaint_region(
        ctx: Context,
        image: ImageRef,
        region: Annotated[masks.Region | None, Field(
            description='Where to repaint: shapes in fractions of the image (origin top-left), '
                        'e.g. [{"shape":"ellipse","box":[0.1,0.5,0.4,0.9]}] or {"shape":"polygon","points":[[x,y],...]}.')] = None,
        mask: Annotated[str | None, Field(description="Instead of region: base64 or data: URL image, white = repaint")] = None,
        prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="What to paint there.")] = None,
        name: Name = None,
        wait_seconds: Wait = None,
    ) -> Result:
        """Repaint a region of a single (upscaled) image, leaving the rest (variation_region)."""
        def plan(ws: Workspace) -> tuple[ImageRecord, dict[str, Any]]:
            if (region is None) == (mask is None):
                raise InvalidInput("give exactly one of region and mask")
            record = finished(image, ws)
            entry = actions.get("variation_region")
            if not actions.allowed_on(entry, record.actions, record.kind):
                raise ActionNotAllowed(f"{record.name} is a {record.kind or 'unknown'} image; only a single image can be repainted",
                                       next_step=f'Upscale a quadrant first: apply_action(image="{record.name}", action="upscale1").')
            if not (record.raw_width and record.raw_height):
                raise InvalidInput(f"the size of {record.name} is unknown, so no mask can be made")
            size = (record.raw_width, record.raw_height)
            if mask is not None:
                picture = masks.decode_upload(mask, *size)
            else:
                picture = masks.render(region, *size)
            if masks.coverage(picture) == 0:
                raise InvalidInput("the region covers no pixel of the image", next_step="Use a larger region.")
            if prompt:
                check_prompt_text(prompt)
            child = ImageRecord(name=ws.new_name(requested=name, parent=record.name, action="variation_region"),
                                parent=record.name, action="variation_region", prompt=prompt or record.prompt)
            body: dict[str, Any] = {"action": "variation_region", "image_id": record.image_id, "mask": masks.encode(picture)}
            if prompt:
                body["prompt"] = prompt
            return child, body

        return await generate(ctx, plan, wait_seconds)

    async def get_task(
        ctx: Context,
        ref: Annotated[str, Field(description="A name, image_id or task_id.")],
        wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT, description="Wait up to this long for a running task.")] = 0,
    ) -> Result:
        """The state of an image or task, waiting for it to finish if asked to."""
        state: AppState = ctx.request_context.lifespan_context
        try:
            ws = _workspace(ctx)
            record = ws.find(ref)
            before = (len(ws), record.status if record else None)
            if record is None:  # a task started elsewhere: another session, another client
                task = await state.upstream.retrieve(ref.strip())
                if task is None:
                    raise ws.unknown(ref)
                record = ws.adopt(task)
                if task.response is not None:
                    record.apply(task.update)
            elif not record.final and record._job is None and record.task_id:
                task = await state.upstream.retrieve(record.task_id)  # nobody follows it: ask upstream
                if task is not None and task.response is not None:
                    record.apply(task.update)
            if not record.final and record._job is None and record.task_id:
                task_id = record.task_id
                attach(record, lambda hook: state.jobs.track(task_id, hook))
            job = record._job
            if isinstance(job, Job) and wait_seconds > 0:
                await wait_for(ctx, record, job, wait_seconds)
            if (len(ws), record.status) != before:
                await notify_changed(ctx)
        except MjMcpError as exc:
            return fail(exc)
        return await shown(ctx, record)

    async def list_images(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        lineage_of: Annotated[str | None, Field(description="Only this image's family.")] = None,
    ) -> Annotated[CallToolResult, ImageList]:
        """This session's images, newest first, one line each."""
        try:
            return list_result(_workspace(ctx), limit=limit, lineage_of=lineage_of)
        except MjMcpError as exc:
            return fail(exc)

    async def export_image(
        ctx: Context,
        image: ImageRef,
        path: Annotated[str, Field(description="File path in the export directory.")],
        overwrite: bool = False,
    ) -> Annotated[CallToolResult, ExportResult]:
        """Save an image, full size, to a file in the export directory."""
        state: AppState = ctx.request_context.lifespan_context
        try:
            record = _workspace(ctx).resolve(image)
            try:
                data, mime = await state.images.original(record)
            except ImageUnavailable as exc:
                raise InvalidInput(str(exc), next_step=f'Call get_task("{record.name}").') from None
            file = export.target(settings.export_dir or Path.cwd(), path, mime)
            await anyio.to_thread.run_sync(lambda: export.write(file, data, overwrite=overwrite))
        except MjMcpError as exc:
            return fail(exc)
        except OSError as exc:
            return fail(ExportRefused(f"cannot write there: {exc.strerror or type(exc).__name__}"))
        return export_result(record.name, file, len(data), mime)

    async def image_resource(name: str, ctx: Context) -> bytes:
        """A generated image, full size, by its name."""
        state: AppState = ctx.request_context.lifespan_context
        record = _workspace(ctx).find(name)
        if record is None:
            raise ResourceNotFoundError(f"no image {name!r} in this session")
        try:
            data, _ = await state.images.original(record)
        except ImageUnavailable as exc:
            raise ResourceError(str(exc)) from None
        return data

    async def view_image(
        ctx: Context,
        image: ImageRef,
        max_px: Annotated[int, Field(ge=64, le=2048)] = 1024,
    ) -> CallToolResult:
        """The MCP App's picture of an image: its record, and a JPEG of the finished image or of
        upstream's latest partial picture while it runs."""
        state: AppState = ctx.request_context.lifespan_context
        try:
            record = _workspace(ctx).resolve(image)
        except MjMcpError as exc:
            return fail(exc)
        job = record._job
        partial = job.preview_url if isinstance(job, Job) else None
        jpeg, shown = await state.pictures.show(record, max_px, partial)
        done = record.status == "completed"
        result = ImageResult(**record.model_dump(), simulated=settings.simulate, uri=uri_for(record.name) if done else None)
        content: list[TextContent | ImageContent] = [
            TextContent(type="text", text=f"{record.name}: {record.status} ({record.progress:.0f}%)")]
        if jpeg is not None:
            content.append(ImageContent(type="image", data=base64.b64encode(jpeg).decode(), mime_type="image/jpeg"))
        return CallToolResult(content=content, structured_content={**result.model_dump(mode="json"), "preview": shown})

    apps = Apps()
    apps.add_html_resource(VIEW_URI, view_html(), name="mj-mcp view", title="Midjourney images",
                           description="The result large, Midjourney's buttons, a region painter, the gallery.",
                           prefers_border=True)
    apps.tool(resource_uri=VIEW_URI, visibility=["app"], name="view_image", annotations=LOCAL_READ)(view_image)

    tools = [_tool(fn, GENERATES, UI_META) for fn in (imagine, apply_action, blend, inpaint_region)] + [
        _tool(get_task, READS, UI_META), _tool(list_images, LOCAL_READ, UI_META), _tool(export_image, LOCAL_WRITE)]
    server = ImageServer("mj-mcp", title="Midjourney (AceDataCloud)", version="0.1.0", tools=tools,
                         instructions=_instructions(settings), lifespan=lifespan, log_level=settings.log_level,  # type: ignore[arg-type]
                         workspace_of=_workspace, extensions=[apps])
    server.resource(URI_TEMPLATE, name="image", mime_type="image/png")(image_resource)
    return server


def _tool(fn: Any, annotations: ToolAnnotations, meta: dict[str, Any] | None = None) -> Tool:
    """A tool as the model reads it on every turn: a compacted input schema and no output schema.
    Results still carry ``structuredContent`` (the README lists its fields); publishing its schema
    would double the tool list for clients that do not show it to the model anyway."""
    tool = Tool.from_function(fn, annotations=annotations, structured_output=True, meta=meta)
    tool.parameters = compact_schema(tool.parameters)
    tool.fn_metadata.output_schema = None
    return tool


def compact_schema(node: Any) -> Any:
    """Drop generated titles and null defaults, and fold ``anyOf [X, null]`` into X (a parameter
    that may be left out needs no null): the same constraints in about half the characters."""
    if isinstance(node, list):
        return [compact_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: compact_schema(v) for k, v in node.items()
           if k != "title" and not (k == "default" and v is None)}
    if "properties" in node:  # a property named "title" is not a title
        out["properties"] = {k: compact_schema(v) for k, v in node["properties"].items()}
    variants = out.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and {"type": "null"} in variants:
        del out["anyOf"]
        out.update(next(v for v in variants if v != {"type": "null"}))
    return out


def configure_logging(level: str) -> None:
    """Logs go to stderr, never stdout (stdout is the protocol on stdio)."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
