"""Images as MCP resources: ``mj://images/{name}`` per workspace, MIME from the bytes, list-changed. A
texts record (describe's prompts, a rewritten prompt) is the same kind of resource, read as text/plain; a
video's clips are ``mj://videos/{name}/{clip}`` (``video/mp4``, clip 1-4).

The SDK's resource list is global and takes no context, but images belong to a workspace, so
``ImageServer`` lists the caller's own finished images, and reports each read's MIME type from the
bytes rather than the template's single declared type. Both are small overrides of ``MCPServer``
(``_handle_list_resources`` is private in SDK 2.3: the only seam for a per-caller list). It also
answers an unknown tool or prompt, and an unknown resource, with the JSON-RPC error the spec wants (for a
resource, the negotiated revision's: ``protocol.resource_not_found_code``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ListResourcesResult, Resource

from ..core.kinds import Kind
from ..errors import ImageUnavailable, StoreError, UnknownReference
from ..media.previews import sniff_mime
from ..records import TEXT_MIME, Record
from .protocol import resource_not_found_code
from .results import URI_TEMPLATE, clip_uri, uri_for
from .scope import Ctx, scope

log = logging.getLogger("mj_mcp.resources")

MAX_LISTED = 200  # resources/list shows at most this many images, newest first


class ImageServer(MCPServer[Any]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The tools given and those an extension added (the MCP App's view_image); the SDK has no
        # public synchronous list of them.
        self._tool_names = frozenset(t.name for t in self._tool_manager.list_tools())

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        # The spec makes an unknown tool a protocol error (-32602); the SDK would answer a tool error.
        if name not in self._tool_names:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name[:64]}")
        return await super().call_tool(name, arguments, context)

    async def get_prompt(self, name: str, arguments: Any = None, context: Any = None) -> Any:
        # There are no prompts; the SDK's unknown-prompt error would reach the client with code 0.
        raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name[:64]}")

    async def _handle_list_resources(self, ctx: Any, params: Any) -> ListResourcesResult:
        try:
            _, ws = scope(Context(request_context=ctx, mcp_server=self))
            records = await ws.latest(MAX_LISTED)
        except Exception as exc:  # no workspace for this request: the static list only
            log.debug("no images listed: %s", exc)
            records = []
        images = [
            Resource(
                uri=uri_for(r.name),
                name=r.name,
                mime_type=r.media[0].mime,
                description=f"{r.kind or 'image'}{_size(r)}: {(r.prompt or '')[:60]}",
            )
            if r.is_image
            else Resource(
                uri=uri_for(r.name),
                name=r.name,
                mime_type=TEXT_MIME,
                description=f"{r.kind} ({r.action}): {(r.prompt or r.prompts[0])[:60]}",
            )
            for r in records
            if (r.is_image and r.media) or r.as_text() is not None
        ]
        clips = [
            Resource(
                uri=clip_uri(r.name, n),
                name=f"{r.name} clip {n}",
                mime_type=m.mime,
                description=f"video clip {n} of 4: {(r.prompt or '')[:60]}",
            )
            for r in records
            if r.kind is Kind.VIDEOS
            for n, m in enumerate(r.media, start=1)
        ]
        return ListResourcesResult(resources=[*await self.list_resources(), *images, *clips])

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        try:
            results = await super().read_resource(uri, context)
        except ResourceNotFoundError as exc:
            # The SDK answers -32602 to every version; the handshake-era revisions say -32002.
            request = getattr(context, "request_context", None)
            code = resource_not_found_code(getattr(request, "protocol_version", None))
            if code == INVALID_PARAMS:
                raise
            raise MCPError(code=code, message=str(exc), data={"uri": str(uri)}) from None
        if not isinstance(results, Iterable):
            return results  # an InputRequiredResult passes through
        # An image's type is its bytes'; a record's texts are read as text (the template declares PNG).
        named = str(uri).startswith(URI_TEMPLATE.split("{")[0])
        return [
            dataclasses.replace(item, mime_type=sniff_mime(item.content) or item.mime_type)
            if isinstance(item, ReadResourceContents) and isinstance(item.content, bytes)
            else dataclasses.replace(item, mime_type=TEXT_MIME)
            if isinstance(item, ReadResourceContents) and named
            else item
            for item in results
        ]


def _size(record: Record) -> str:
    # An edit's result has no size upstream said.
    return f" {record.raw_width}x{record.raw_height}" if record.raw_width and record.raw_height else ""


async def image_resource(name: str, ctx: Ctx) -> bytes | str:
    """A generated image, full size, by its name; a texts record's texts as text, one a line."""
    studio, ws = scope(ctx)
    try:
        data, mime = await studio.original(ws, name)
    except UnknownReference:
        raise ResourceNotFoundError(f"no image {name[:64]!r} in this workspace") from None
    except ImageUnavailable as exc:
        raise ResourceError(exc.message) from None
    # What failed and what to do, in the words a tool error uses.
    except StoreError as exc:
        raise ResourceError(str(exc)) from None
    return data.decode() if mime == TEXT_MIME else data


async def clip_resource(name: str, clip: str, ctx: Ctx) -> bytes:
    """One clip of a video (MP4), by the video's name and the clip's number, 1-4."""
    if not (clip.isdigit() and 1 <= int(clip) <= 4):
        raise ResourceNotFoundError(f"no clip {clip[:8]!r}: a video's clips are 1-4")
    studio, ws = scope(ctx)
    try:
        data, _ = await studio.clip(ws, name, int(clip))
    except UnknownReference:
        raise ResourceNotFoundError(f"no video {name[:64]!r} in this workspace") from None
    except ImageUnavailable as exc:
        raise ResourceError(exc.message) from None
    except StoreError as exc:
        raise ResourceError(str(exc)) from None
    return data


async def notify_changed(ctx: Context[Any, Any]) -> None:
    """Tell clients the resource list changed, in both protocol eras; best effort, never fails."""
    for send in (
        ctx.notify_resources_changed,  # 2026-07-28: subscriptions/listen streams
        lambda: ctx.session.send_resource_list_changed(),
    ):  # handshake era
        try:
            await send()
        except Exception as exc:
            log.debug("resource list-changed not sent: %s", exc)
