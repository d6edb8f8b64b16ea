"""The MCP App's server side: the ``ui://`` view registered through the SDK's own Apps extension, the
app-only ``view_image`` tool, and what a client without MCP Apps sees (exactly what it saw before).

A host with MCP Apps renders the view (``mj_mcp/ui``) for the results of the tools the operation table
binds to it (``tools.tool_of``); the view gets its pixels from ``view_image`` (the studio's ``picture``
operation), hidden from the model by visibility. The SDK lists every tool to every client, so
``for_plain_clients`` takes the app-only tool, the ``_meta.ui`` entries and the ``ui://`` resource out of
the lists a client gets when it did not declare the extension: no tool's behaviour, and no list the
model reads, depends on the view.
"""

from __future__ import annotations

from typing import Any

from mcp.server.apps import Apps, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from ..core.operations import TOOLS
from ..ui import VIEW_URI, view_html
from .tools import ANNOTATIONS, adapter_of


def extension() -> Apps:
    """The Apps extension: the view as ``ui://mj-mcp/view.html`` and its app-only tools."""
    apps = Apps()
    apps.add_html_resource(
        VIEW_URI,
        view_html(),
        name="mj-mcp view",
        title="Midjourney images",
        description="The image large, Midjourney's buttons, a region painter, the gallery.",
        prefers_border=True,
    )
    for spec in TOOLS:
        if spec.app_only:
            apps.tool(
                resource_uri=VIEW_URI,
                visibility=["app"],
                name=spec.name,
                title=spec.title,
                annotations=ANNOTATIONS[spec.effect],
            )(adapter_of(spec))
    return apps


async def for_plain_clients(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: a client that did not declare MCP Apps gets the tool and resource lists it got
    before the App existed (and the model behind it, no tool it cannot use). Middleware sees results
    as the wire dicts they are about to become."""
    result = await call_next(ctx)
    if ctx.method not in ("tools/list", "resources/list") or not isinstance(result, dict) or client_supports_apps(ctx):
        return result
    if ctx.method == "tools/list":
        return {**result, "tools": [_without_ui(t) for t in result.get("tools", []) if not _app_only(t)]}
    return {
        **result,
        "resources": [r for r in result.get("resources", []) if not str(r.get("uri", "")).startswith("ui://")],
    }


def _app_only(tool: dict[str, Any]) -> bool:
    ui = (tool.get("_meta") or {}).get("ui") or {}
    return "model" not in ui.get("visibility", ["model", "app"])


def _without_ui(tool: dict[str, Any]) -> dict[str, Any]:
    meta = tool.get("_meta")
    if not meta or "ui" not in meta:
        return tool
    rest = {k: v for k, v in meta.items() if k != "ui"}
    out = {k: v for k, v in tool.items() if k != "_meta"}
    return {**out, "_meta": rest} if rest else out
