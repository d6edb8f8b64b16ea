"""``list_images``: the session's images, newest first, one line each: the model's memory.

After a long conversation the model has lost the early results from its context; a compact list
(name, kind, size, status, parent, the prompt's head) lets it find "the fox from before" again.
"""

from __future__ import annotations

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from .core.prompt import parse
from .registry import ImageRecord, Workspace

PROMPT_HEAD = 48


class ImageSummary(BaseModel):
    name: str
    kind: str | None = None
    size: str | None = None
    status: str
    parent: str | None = None
    prompt: str | None = None


class ImageList(BaseModel):
    images: list[ImageSummary]
    total: int  # matching images, before the limit


def summarize(record: ImageRecord) -> ImageSummary:
    size = f"{record.raw_width}x{record.raw_height}" if record.raw_width and record.raw_height else None
    head = parse(record.prompt).text if record.prompt else None  # the words: no image URLs, no flags
    if head and len(head) > PROMPT_HEAD:
        head = head[: PROMPT_HEAD - 1].rstrip() + "…"
    return ImageSummary(name=record.name, kind=record.kind.value if record.kind else None, size=size,
                        status=record.status, parent=record.parent, prompt=head)


def line(s: ImageSummary) -> str:
    what = ", ".join(x for x in (s.kind, s.size, s.status if s.status != "completed" else None,
                                 f"from {s.parent}" if s.parent else None) if x)
    return f"{s.name}: {what}" + (f' "{s.prompt}"' if s.prompt else "")


def lineage(ws: Workspace, ref: str) -> set[str]:
    """The image, its ancestors, and every image derived from it."""
    start = ws.resolve(ref)
    family = {start.name}
    record: ImageRecord | None = start
    while record is not None and record.parent:
        family.add(record.parent)
        record = ws.records.get(record.parent)
    grew = True
    descendants = {start.name}
    while grew:
        grew = False
        for r in ws.records.values():
            if r.parent in descendants and r.name not in descendants:
                descendants.add(r.name)
                grew = True
    return family | descendants


def list_result(ws: Workspace, *, limit: int, lineage_of: str | None) -> CallToolResult:
    records = list(reversed(ws.records.values()))  # registration order, newest first
    if lineage_of is not None:
        keep = lineage(ws, lineage_of)
        records = [r for r in records if r.name in keep]
    shown = [summarize(r) for r in records[:limit]]
    if not shown:
        text = "No images yet in this session: start with imagine."
    else:
        text = "\n".join(line(s) for s in shown)
        if len(records) > limit:
            text += f"\n… {len(records) - limit} older; raise limit to see them."
    result = ImageList(images=shown, total=len(records))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json"))
