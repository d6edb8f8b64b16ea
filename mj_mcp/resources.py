"""Images as MCP resources: ``mj://images/{name}`` per workspace, MIME from the bytes, list-changed.

The SDK's resource list is global and takes no context, but images belong to a workspace (one
client's session), so ``ImageServer`` lists the caller's own finished images, and reports each
read's MIME type from the bytes rather than the template's single declared type.
Both hooks are small overrides of ``MCPServer``; nothing else of the SDK is changed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import Any

from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.types import ListResourcesResult, ListToolsResult, Resource, Tool

from .media.images import uri_for
from .media.previews import sniff_mime
from .registry import Workspace

log = logging.getLogger("mj_mcp.resources")


class ImageServer(MCPServer):
    def __init__(self, *args: Any, workspace_of: Callable[[Context], Workspace], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._workspace_of = workspace_of

    async def _handle_list_resources(self, ctx: Any, params: Any) -> ListResourcesResult:
        try:
            ws = self._workspace_of(Context(request_context=ctx, mcp_server=self))
        except Exception:  # no workspace for this request: the static list only
            ws = None
        images = [] if ws is None else [
            Resource(uri=uri_for(r.name), name=r.name, mime_type="image/png",
                     description=f"{r.kind or 'image'} {r.raw_width}x{r.raw_height}: {(r.prompt or '')[:60]}")
            for r in reversed(ws.records.values()) if r.status == "completed" and (r.raw_image_url or r.image_url)
        ]
        static = [r for r in await self.list_resources() if not str(r.uri).startswith("ui://")]  # found via tools
        return ListResourcesResult(resources=[*static, *images])

    async def _handle_list_tools(self, ctx: Any, params: Any) -> ListToolsResult:
        """A client without MCP Apps gets today's list: no app-only tools, no ``_meta.ui``."""
        result = await super()._handle_list_tools(ctx, params)
        if client_supports_apps(ctx):
            return result
        return ListToolsResult(tools=[_without_ui(t) for t in result.tools if not _app_only(t)])

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        results = await super().read_resource(uri, context)
        if not isinstance(results, Iterable):
            return results  # an InputRequiredResult passes through
        return [dataclasses.replace(item, mime_type=sniff_mime(item.content) or item.mime_type)
                if isinstance(item, ReadResourceContents) and isinstance(item.content, bytes) else item
                for item in results]


async def notify_changed(ctx: Context) -> None:
    """Tell clients the resource list changed, in both protocol eras; best effort, never fails."""
    for send in (ctx.notify_resources_changed,  # 2026-07-28: subscriptions/listen streams
                 lambda: ctx.session.send_resource_list_changed()):  # handshake era
        try:
            await send()
        except Exception as exc:
            log.debug("resource list-changed not sent: %s", exc)


def _app_only(tool: Tool) -> bool:
    ui = (tool.meta or {}).get("ui") or {}
    return "model" not in ui.get("visibility", ["model", "app"])


def _without_ui(tool: Tool) -> Tool:
    if not tool.meta or "ui" not in tool.meta:
        return tool
    rest = {k: v for k, v in tool.meta.items() if k != "ui"}
    return tool.model_copy(update={"meta": rest or None})
