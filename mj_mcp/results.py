"""What a tool call returns: the full record as ``structuredContent``, a short text for the model.

The text is the model's context budget: a name, what the image is, and the one next step that
makes sense, never 19-digit ids or long URLs (those live in the structured result).
"""

from __future__ import annotations

import base64
from pathlib import Path

from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel

from .core.actions import Kind
from .errors import MjMcpError
from .registry import ImageRecord

SIM_TAG = "[simulated] "


class ImageResult(ImageRecord):
    simulated: bool = False
    uri: str | None = None  # the full image as an MCP resource, once there is one


def _ref(name: str) -> str:
    return f'"{name}"'


def describe(record: ImageRecord) -> str:
    """One or two sentences about a record and what to do next."""
    name = _ref(record.name)
    if record.status == "failed":
        err = record.error
        why = f"{err.code}: {err.message}" if err else "unknown error"
        return f"{record.name} failed ({why})."
    if record.status == "running":
        return (f"{record.name} is still generating ({record.progress:.0f}%) and goes on in the background. "
                f"To wait for it, call get_task(ref={name}, wait_seconds=50).")
    size = f"{record.raw_width}x{record.raw_height}" if record.raw_width else "size unknown"
    if record.kind == Kind.GRID:
        return (f"{record.name} is ready: a 2x2 grid ({size}), quadrants 1-4 from top-left. "
                f"Next: apply_action(image={name}, action=\"upscaleN\" to take quadrant N out, "
                f"\"variationN\" to vary it, or \"reroll\").")
    what = "upscaled image" if record.kind == Kind.UPSCALED else "single image"
    return (f"{record.name} is ready: one {what} ({size}). Next: apply_action(image={name}, action=one of "
            f"{', '.join(record.actions) or 'none'}), or inpaint_region to repaint a part.")


def image_result(record: ImageRecord, *, simulated: bool, uri: str | None = None,
                 preview: bytes | None = None, note: str | None = None, mime: str | None = None) -> CallToolResult:
    """The record; with ``uri`` (a finished image) a resource link to it, with ``preview`` a JPEG
    thumbnail to look at, with ``note`` one line on why the thumbnail is missing."""
    result = ImageResult(**record.model_dump(), simulated=simulated, uri=uri)
    text = (SIM_TAG if simulated else "") + describe(record)
    if note:
        text += f"\n{note}"
    content: list[TextContent | ImageContent | ResourceLink] = [TextContent(type="text", text=text)]
    if preview is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(preview).decode(), mime_type="image/jpeg"))
    if uri is not None:
        content.append(ResourceLink(type="resource_link", uri=uri, name=record.name,
                                    description="full-size image", mime_type=mime))
    return CallToolResult(content=content, structured_content=result.model_dump(mode="json"))


def error_result(exc: MjMcpError, *, simulated: bool, record: ImageRecord | None = None) -> CallToolResult:
    """A tool error the model can act on, never a stack trace (upstream text arrives with the token
    already masked, in upstream.py). With ``record`` (a task that existed upstream and failed) the
    failed record is returned as structured content too."""
    text = (SIM_TAG if simulated else "") + str(exc)
    structured = None
    if record is not None:
        text += f" Recorded as {record.name}."
        structured = ImageResult(**record.model_dump(), simulated=simulated).model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured, is_error=True)


class ExportResult(BaseModel):
    image: str
    path: str
    bytes: int
    mime: str


def export_result(name: str, path: Path, size: int, mime: str) -> CallToolResult:
    result = ExportResult(image=name, path=str(path), bytes=size, mime=mime)
    return CallToolResult(content=[TextContent(type="text", text=f"Saved {name} to {path} ({size:,} bytes).")],
                          structured_content=result.model_dump(mode="json"))
