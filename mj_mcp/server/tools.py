"""The MCP tools: thin adapters over the studio. Arguments in, one call into the studio, a result out.

Errors take one path: a tool raises ``MjMcpError`` and ``adapter`` turns it into a tool error
(``isError``, the code, the message and the next step); anything else is the SDK's "Error executing
tool", with the details in the server's log only.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..core import masks, operations
from ..core.operations import (
    APPLY_ACTION,
    BLEND,
    EXPORT_IMAGE,
    GET_TASK,
    IMAGINE,
    INPAINT_REGION,
    LIST_IMAGES,
    MODEL_TOOLS,
    Effect,
)
from ..core.actions import FollowUp
from ..errors import MjMcpError
from ..jobs import Report
from ..records import Record
from ..studio import MAX_PROMPT, MAX_WAIT, Mode, Plan, failure_of
from ..ui import UI_META
from . import results
from .protocol import warn_in_request
from .resources import notify_changed
from .results import ExportResult, ImageList, ImageResult
from .scope import Ctx, app_of, scope

log = logging.getLogger("mj_mcp.tools")

Name = str | None  # the result's name (default: derived from the prompt or the parent)
ImageRef = str  # an image's name (or its image_id or task_id)
Wait = Annotated[float | None, Field(ge=0, le=MAX_WAIT, description="Max seconds to wait (default 50); the job goes on")]
Result = Annotated[CallToolResult, ImageResult]

# Only what differs from the spec's defaults (not read-only, destructive, not idempotent, open world):
# the hints are read on every turn too.
ANNOTATIONS: dict[Effect, ToolAnnotations] = {
    Effect.GENERATES: ToolAnnotations(destructive_hint=False),
    Effect.LOOKS_UP: ToolAnnotations(read_only_hint=True),
    Effect.READS: ToolAnnotations(read_only_hint=True, open_world_hint=False),
    Effect.WRITES: ToolAnnotations(idempotent_hint=True, open_world_hint=False),
}

F = TypeVar("F", bound=Callable[..., Awaitable[CallToolResult]])


def adapter(fn: F) -> F:
    """The one error path: a project error becomes a tool error the model can act on."""
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except MjMcpError as exc:
            return results.error_result(exc, simulated=app_of(kwargs["ctx"]).settings.simulate)

    return run  # type: ignore[return-value]


def _reporter(ctx: Ctx, name: str) -> Report:
    async def report(progress: float, message: str) -> None:
        await ctx.report_progress(progress, 100, f"{name}: {message}")

    return report


async def _shown(ctx: Ctx, record: Record, *, failure_is_error: bool = False) -> CallToolResult:
    """The record's result; a finished image with its thumbnail and a link to the resource. A task that
    failed while this call started it is a tool error (with the record); get_task just reports it."""
    studio, simulated = app_of(ctx).studio, app_of(ctx).settings.simulate
    if record.status == "failed" and failure_is_error:
        return results.error_result(failure_of(record), simulated=simulated, record=record)
    if record.status != "completed":
        return results.image_result(record, simulated=simulated)
    preview = await studio.preview(record)
    if preview.note:  # also a log message, for a client that asked for warnings
        await warn_in_request(ctx, app_of(ctx).connections, f"{record.name}: {preview.note}")
    return results.image_result(record, simulated=simulated, preview=preview.jpeg, note=preview.note, mime=preview.mime)


async def _generate(ctx: Ctx, plan: Plan, wait_seconds: float | None) -> CallToolResult:
    """Start a checked plan, follow it with progress up to the deadline, answer with the record."""
    studio, ws = scope(ctx)
    record = await studio.start(ws, plan)
    _tell_when_done(ctx, record)  # list-changed (resources/list shows finished images only) when it ends
    wait = app_of(ctx).settings.wait_s if wait_seconds is None else wait_seconds
    record = await studio.wait(ws, record, wait, _reporter(ctx, record.name))
    return await _shown(ctx, record, failure_is_error=True)


def _tell_when_done(ctx: Ctx, record: Record) -> None:
    """Subscribers, listeners and this connection hear when the record's job ends, after this call too."""
    app = app_of(ctx)
    app.connections.after(app.tasks, ctx.request_context, record.id, app.studio.ending(record))


@adapter
async def imagine(
    ctx: Ctx,
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT, description="What to draw, then any of --v --s --c --q --seed --no --style raw --tile")],
    images: Annotated[list[str], Field(max_length=5, description="Image prompts: names or https URLs")] = [],  # noqa: B006
    aspect_ratio: Annotated[str | None, Field(pattern=r"^\d{1,2}:\d{1,2}$", description="W:H, e.g. 16:9")] = None,
    mode: Mode = "fast",
    translation: bool = False,  # upstream translates a non-English prompt
    name: Name = None,
    wait_seconds: Wait = None,
) -> Result:
    """A 2x2 grid of four candidates from a prompt (quadrants 1-4 from top-left)."""
    # Midjourney's other options stay prompt flags, checked locally like every flag: typed copies
    # of them would cost the tool list a tenth of its budget and say nothing the flags do not.
    studio, ws = scope(ctx)
    plan = await studio.plan_imagine(ws, prompt=prompt, images=images, aspect_ratio=aspect_ratio, mode=mode,
                                     translation=translation, name=name)
    return await _generate(ctx, plan, wait_seconds)


@adapter
async def apply_action(
    ctx: Ctx,
    image: ImageRef,
    action: Annotated[FollowUp, Field(description="One of the image's actions (see its result)")],
    name: Name = None,
    mode: Mode = "fast",
    wait_seconds: Wait = None,
) -> Result:
    """Upscale, vary, reroll, zoom out or pan an earlier image."""
    studio, ws = scope(ctx)
    plan = await studio.plan_action(ws, image=image, action=action, mode=mode, name=name)
    return await _generate(ctx, plan, wait_seconds)


@adapter
async def blend(
    ctx: Ctx,
    images: Annotated[list[str], Field(min_length=2, max_length=5, description="Names or https URLs")],
    prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="Text to steer the blend")] = None,
    aspect_ratio: Annotated[str | None, Field(pattern=r"^\d{1,2}:\d{1,2}$", description="W:H (--ar)")] = None,
    mode: Mode = "fast",
    name: Name = None,
    wait_seconds: Wait = None,
) -> Result:
    """Blend 2-5 images into a new 2x2 grid."""
    studio, ws = scope(ctx)
    plan = await studio.plan_blend(ws, images=images, prompt=prompt, aspect_ratio=aspect_ratio, mode=mode, name=name)
    return await _generate(ctx, plan, wait_seconds)


@adapter
async def inpaint_region(
    ctx: Ctx,
    image: ImageRef,
    region: Annotated[masks.Region | None, Field(
        description='Shapes in fractions 0-1 of the image, origin top-left, e.g. [{"shape":"ellipse","box":[0.1,0.5,0.4,0.9]}]')] = None,
    mask: Annotated[str | None, Field(description="Instead of region: base64 or data: URL image, white = repaint")] = None,
    prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="What to paint there.")] = None,
    name: Name = None,
    wait_seconds: Wait = None,
) -> Result:
    """Repaint a region of a single (upscaled) image; the rest stays (variation_region)."""
    studio, ws = scope(ctx)
    plan = await studio.plan_inpaint(ws, image=image, region=region, mask=mask, prompt=prompt, name=name)
    return await _generate(ctx, plan, wait_seconds)


@adapter
async def get_task(
    ctx: Ctx,
    ref: Annotated[str, Field(description="A name, image_id or task_id.")],
    wait_seconds: Annotated[float, Field(ge=0, le=MAX_WAIT, description="Max seconds to wait for a running task")] = 0,
) -> Result:
    """An image's or task's state; waits for it to finish if asked to."""
    studio, ws = scope(ctx)
    record, adopted = await studio.get(ws, ref)
    _tell_when_done(ctx, record)
    before = record.status
    if wait_seconds > 0:
        record = await studio.wait(ws, record, wait_seconds, _reporter(ctx, record.name))
    if adopted or record.status != before:
        await notify_changed(ctx)
    return await _shown(ctx, record)


@adapter
async def list_images(
    ctx: Ctx,
    limit: Annotated[int, Field(ge=1, le=200)] = 20,
    lineage_of: Annotated[str | None, Field(description="Only this image's family.")] = None,
) -> Annotated[CallToolResult, ImageList]:
    """This workspace's images, newest first, one line each."""
    studio, ws = scope(ctx)
    return results.list_result(await studio.list_images(ws, limit=limit, lineage_of=lineage_of))


@adapter
async def export_image(
    ctx: Ctx,
    image: ImageRef,
    path: Annotated[str, Field(description="File path in the export directory.")],
    overwrite: bool = False,
) -> Annotated[CallToolResult, ExportResult]:
    """Save an image, full size, to a file in the export directory."""
    studio, ws = scope(ctx)
    return results.export_result(await studio.export(ws, image=image, path=path, overwrite=overwrite))


# The one output schema of the tools that answer with an image record (the generating tools and
# get_task): what a typed client branches on, the rest of the record open (``uri`` is
# mj://images/<name>). The record model's own schema is about 1,500 characters a tool, read by the
# model on every turn; this one is about 130.
RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "status": {"enum": ["running", "completed", "failed"]}},
    "required": ["name", "status"],
}


def all_tools() -> list[Tool]:
    """The model's tools, as the operation table (``core/operations.py``) describes them: name, title,
    annotations; those whose results the MCP App shows carry its ``_meta.ui`` (view.py)."""
    adapters = {IMAGINE: imagine, APPLY_ACTION: apply_action, BLEND: blend, INPAINT_REGION: inpaint_region,
                GET_TASK: get_task, LIST_IMAGES: list_images, EXPORT_IMAGE: export_image}
    return [_tool(adapters[t.name], t) for t in MODEL_TOOLS]


def _tool(fn: Any, spec: operations.Tool) -> Tool:
    """A tool as the model reads it on every turn: a compacted input schema and, for image records,
    the shared compact output schema. Results are built from the record model, so the SDK does not
    check them against it again per call (``output_model`` None: published, not re-validated)."""
    meta = UI_META if spec.in_app else None
    tool = Tool.from_function(fn, name=spec.name, title=spec.title, annotations=ANNOTATIONS[spec.effect],
                              structured_output=True, meta=meta)
    tool.parameters = compact_schema(tool.parameters)
    # A record's shape for the tools that answer with one; the others publish none (their results
    # still carry structuredContent).
    answers_a_record = spec.effect in (Effect.GENERATES, Effect.LOOKS_UP)
    tool.fn_metadata.output_schema = RECORD_SCHEMA if answers_a_record else None
    tool.fn_metadata.output_model = None
    return tool


def compact_schema(node: Any) -> Any:
    """Drop generated titles and null or empty-list defaults, write whole-number bounds as integers,
    and fold ``anyOf [X, null]`` into X (a parameter that may be left out needs no null): the same
    constraints in about half the characters. A ``type`` stays beside an ``enum``: some hosts'
    function-calling converters want a type on every property."""
    if isinstance(node, list):
        return [compact_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$defs" in node:  # a definition used once is written in place: no "$defs" and "$ref" to spell
        node = _inline_single_use(node)
    out = {k: compact_schema(v) for k, v in node.items()
           if k != "title" and not (k == "default" and v in (None, []))}
    out.update({k: int(v) for k, v in out.items() if k in ("minimum", "maximum") and v == int(v)})
    if "properties" in node:  # a property named "title" is not a title
        out["properties"] = {k: compact_schema(v) for k, v in node["properties"].items()}
    variants = out.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and {"type": "null"} in variants:
        del out["anyOf"]
        out.update(next(v for v in variants if v != {"type": "null"}))
    return out


def _inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    defs = dict(schema["$defs"])
    text = json.dumps(schema)
    once = {name for name in defs if text.count(f'"#/$defs/{name}"') == 1}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref", "")
        if len(node) == 1 and ref.startswith("#/$defs/") and ref[8:] in once:
            return walk(defs[ref[8:]])
        return {k: walk(v) for k, v in node.items()}

    out = {k: walk(v) for k, v in schema.items() if k != "$defs"}
    kept = {name: walk(d) for name, d in defs.items() if name not in once}
    return {**out, "$defs": kept} if kept else out
