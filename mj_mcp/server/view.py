"""The MCP App's server side: the ``ui://`` view registered through the SDK's own Apps extension, the
app-only ``view_image`` tool, and what a client without MCP Apps sees (exactly what it saw before).

A host with MCP Apps renders the view (``mj_mcp/ui``) for the results of the tools whose ``_meta.ui``
names it (``tools.all_tools``); the view gets its pixels from ``view_image``, hidden from the model by
visibility. The SDK lists every tool to every client, so ``for_plain_clients`` takes the app-only tool,
the ``_meta.ui`` entries and the ``ui://`` resource out of the lists a client gets when it did not
declare the extension: no tool's behaviour, and no list the model reads, depends on the view.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp.server.apps import Apps, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import Field

from ..core.operations import TOOL, VIEW_IMAGE
from ..studio import PICTURE_PX
from ..ui import VIEW_URI, view_html
from .results import uri_for
from .scope import Ctx, app_of, scope
from .tools import ANNOTATIONS, ImageRef, adapter


@adapter
async def view_image(
    ctx: Ctx,
    image: ImageRef,
    max_px: Annotated[int, Field(ge=PICTURE_PX[0], le=PICTURE_PX[1])] = 1024,
) -> CallToolResult:
    """The view's picture of an image: its record, and a JPEG of the finished image, or of upstream's
    latest partial picture while it runs."""
    studio, ws = scope(ctx)
    picture = await studio.picture(ws, image, max_px=max_px)
    record = picture.record
    uri = uri_for(record.name) if record.status == "completed" else None
    structured = {**record.public(), "simulated": app_of(ctx).settings.simulate, "uri": uri, "preview": picture.shown}
    content: list[TextContent | ImageContent] = [
        TextContent(type="text", text=f"{record.name}: {record.status} ({record.progress:.0f}%)")]
    if picture.jpeg is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(picture.jpeg).decode(), mime_type="image/jpeg"))
    return CallToolResult(content=content, structured_content=structured)


def extension() -> Apps:
    """The Apps extension: the view as ``ui://mj-mcp/view.html`` and its app-only picture tool."""
    apps = Apps()
    apps.add_html_resource(VIEW_URI, view_html(), name="mj-mcp view", title="Midjourney images",
                           description="The image large, Midjourney's buttons, a region painter, the gallery.",
                           prefers_border=True)
    spec = TOOL[VIEW_IMAGE]
    apps.tool(resource_uri=VIEW_URI, visibility=["app"], name=spec.name, title=spec.title,
              annotations=ANNOTATIONS[spec.effect])(view_image)
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
    return {**result, "resources": [r for r in result.get("resources", []) if not str(r.get("uri", "")).startswith("ui://")]}


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
