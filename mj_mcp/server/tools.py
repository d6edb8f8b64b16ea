"""The MCP tools: one adapter for every operation of the studio. Arguments in, one call of the
operation, a result out.

The tools are the operation table's (``core/operations.py``: name, title, effect, App binding) and their
functions the studio's (``studio.TOOL_FUNCTIONS``: parameters, description, what they return); ``tool_of``
joins the two, and nothing here is written per tool. A call builds the studio's ``Call`` for the caller
(its workspace, its progress notifications, who hears when its job ends) and shapes what the operation
returns (``results.py``). Errors take one path: an operation raises ``MjMcpError`` and it becomes a tool
error (``isError``, the code, the message and the next step); anything else is the SDK's "Error executing
tool", with the details in the server's log only.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult, InputRequiredResult, ToolAnnotations

from ..core import operations
from ..core.kinds import Kind
from ..core.operations import MODEL_TOOLS, Effect
from ..errors import MjMcpError
from ..records import Handle, Record
from ..studio import TOOL_FUNCTIONS, Call, Exported, Listing, Picture, failure_of
from ..ui import UI_META
from . import asking, results, tasks
from .protocol import warn_in_request
from .resources import notify_changed
from .scope import Ctx, app_of, caller_call

log = logging.getLogger("mj_mcp.tools")

# Only what differs from the spec's defaults (not read-only, destructive, not idempotent, open world):
# the hints are read on every turn too.
ANNOTATIONS: dict[Effect, ToolAnnotations] = {
    Effect.GENERATES: ToolAnnotations(destructive_hint=False),
    Effect.LOOKS_UP: ToolAnnotations(read_only_hint=True),
    Effect.READS: ToolAnnotations(read_only_hint=True, open_world_hint=False),
    Effect.WRITES: ToolAnnotations(idempotent_hint=True, open_world_hint=False),
}

# The one output schema of the tools that answer with a record (the generating tools and get_task):
# what a typed client branches on, the rest of the record open (``uri`` is mj://images/<name>). The
# record model's own schema is about 1,500 characters a tool, read by the model on every turn; this
# one is about 130.
RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "status": {"enum": ["running", "completed", "failed"]}},
    "required": ["name", "status"],
}


def all_tools() -> list[Tool]:
    """The model's tools, as the operation table describes them (the App's own, ``view.py``)."""
    return [tool_of(spec) for spec in MODEL_TOOLS]


def tool_of(spec: operations.Tool) -> Tool:
    """A tool as the model reads it on every turn: the table's name, title and annotations, the
    operation's parameters in a compacted input schema and, for records, the shared compact output
    schema. Results are built from the record model, so the SDK does not check them against it again
    per call (``output_model`` None: published, not re-validated)."""
    tool = Tool.from_function(
        adapter_of(spec),
        name=spec.name,
        title=spec.title,
        context_kwarg="ctx",
        annotations=ANNOTATIONS[spec.effect],
        meta=UI_META if spec.in_app else None,
    )
    tool.parameters = compact_schema(tool.parameters)
    # A record's shape for the tools that answer with one; the others publish none (their results
    # still carry structuredContent).
    answers_a_record = spec.effect in (Effect.GENERATES, Effect.LOOKS_UP)
    tool.fn_metadata.output_schema = RECORD_SCHEMA if answers_a_record else None
    tool.fn_metadata.output_model = None
    return tool


def adapter_of(spec: operations.Tool) -> Callable[..., Awaitable[CallToolResult | InputRequiredResult]]:
    """The tool function of ``spec``: the operation's own parameters (after its ``Call``) behind the
    request's context, its description, and the one error path."""
    operation = TOOL_FUNCTIONS[spec.name]
    signature = inspect.signature(operation, eval_str=True)
    arguments = list(signature.parameters.values())[1:]

    async def run(ctx: Ctx, **kwargs: Any) -> CallToolResult | InputRequiredResult:
        simulated = app_of(ctx).settings.simulate
        ask = tasks.asked() if spec.name in tasks.TASK_TOOLS else None
        try:
            value = await operation(_call(ctx, spec, ask), **kwargs)
        except asking.AskFirst as first:
            # 2026-07-28: the person is asked first; the client calls again with the answer.
            return first.answer()
        except MjMcpError as exc:
            if ask is not None:
                ask.refused = exc
            return results.error_result(exc, simulated=simulated)
        running = isinstance(value, Record) and value.handle is not None and not value.final
        if ask is not None and isinstance(value, Record) and (running or (ask.always and value.handle is not None)):
            # Left to run as a task: the era's protocol layer answers with the task, not this.
            ask.created = value
            return results.image_result(value, simulated=simulated)
        try:
            return await _result(ctx, spec, value)
        except MjMcpError as exc:
            return results.error_result(exc, simulated=simulated)

    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Ctx)
    answer = CallToolResult | InputRequiredResult
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[context, *arguments], return_annotation=answer
    )
    run.__annotations__ = {"ctx": Ctx, **{p.name: p.annotation for p in arguments}, "return": answer}
    run.__name__ = run.__qualname__ = spec.name
    run.__doc__ = operation.__doc__
    return run


def _call(ctx: Ctx, spec: operations.Tool, ask: tasks.Ask | None) -> Call:
    """The studio's call for this request: the caller's workspace, its progress as MCP progress
    notifications, its connection told when a job it started or took over ends, the person asked
    before money is spent where the client can ask (``asking.py``), and, for a call that asked for a
    task, its jobs stored with a handle and a short wait."""
    call = caller_call(ctx)
    call.tool = spec.name
    call.confirm = asking.confirmer(ctx)
    if ask is not None:
        call.handle, call.wait_at_most = Handle(ttl_s=ask.ttl_s), ask.wait_s

    async def progress(name: str, value: float, message: str) -> None:
        await ctx.report_progress(value, 100, f"{name}: {message}")

    def following(record: Record) -> None:
        # Subscribers, listeners and this connection hear when the job ends, after this call too.
        app = app_of(ctx)
        app.connections.after(app.tasks, ctx.request_context, record.id, app.studio.ending(record))

    call.progress, call.following = progress, following
    call.list_changed = lambda: notify_changed(ctx)
    return call


async def _result(ctx: Ctx, spec: operations.Tool, value: object) -> CallToolResult:
    """What an operation returned, as the tool's result."""
    simulated = app_of(ctx).settings.simulate
    if isinstance(value, Record):
        # A job that failed while this call started it is a tool error (with the record); a look at
        # one just reports it.
        return await record_result(ctx, value, failure_is_error=spec.effect is Effect.GENERATES)
    if isinstance(value, Listing):
        return results.list_result(value)
    if isinstance(value, Exported):
        return results.export_result(value)
    if isinstance(value, Picture):
        return results.picture_result(value, simulated=simulated)
    raise TypeError(f"{spec.name} returned a {type(value).__name__}, which no result is shaped for")


async def record_result(ctx: Ctx, record: Record, *, failure_is_error: bool = True) -> CallToolResult:
    """The record's result; a finished image with its thumbnail and a link to the resource, a finished video
    with its poster and a link to each clip. A generating call's (and its task's: ``tasks.py``) makes a
    failed job a tool error."""
    app = app_of(ctx)
    simulated = app.settings.simulate
    if record.status == "failed" and failure_is_error:
        return results.error_result(failure_of(record), simulated=simulated, record=record)
    if record.status != "completed":
        return results.image_result(record, simulated=simulated)
    if record.kind is Kind.VIDEOS:
        poster = await app.studio.poster(record)
        if poster.note:
            await warn_in_request(ctx, app.connections, f"{record.name}: {poster.note}")
        return results.video_result(record, simulated=simulated, poster=poster)
    preview = await app.studio.preview(record)
    # Also a log message, for a client that asked for warnings.
    if preview.note:
        await warn_in_request(ctx, app.connections, f"{record.name}: {preview.note}")
    # An edit's results by name: the images it made, each stored with it when it completed.
    made = [r.name for r in await caller_call(ctx).workspace.results(record)] if record.kind is Kind.EDITS else None
    return results.image_result(
        record, simulated=simulated, preview=preview.jpeg, note=preview.note, mime=preview.mime, results=made
    )


def compact_schema(node: Any) -> Any:
    """Drop generated titles and null or empty-list defaults, write whole-number bounds as integers,
    and fold ``anyOf [X, null]`` into X (a parameter that may be left out needs no null): the same
    constraints in about half the characters. A ``type`` stays beside an ``enum``: some hosts'
    function-calling converters want a type on every property."""
    if isinstance(node, list):
        return [compact_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    # A definition used once is written in place: no "$defs" and "$ref" to spell.
    if "$defs" in node:
        node = _inline_single_use(node)
    out = {k: compact_schema(v) for k, v in node.items() if k != "title" and not (k == "default" and v in (None, []))}
    out.update({k: int(v) for k, v in out.items() if k in ("minimum", "maximum") and v == int(v)})
    # A property named "title" is not a title.
    if "properties" in node:
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
