"""What a tool call returns: the record as ``structuredContent``, a short text for the model.

The text is the model's context budget: a name, what the image is, and the one next step that makes
sense, never 19-digit ids or long URLs (those live in the structured result).
"""

from __future__ import annotations

import base64
from typing import Any

from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel, create_model

from ..core import actions
from ..core.kinds import Kind
from ..core.operations import (
    ANIMATE,
    APPLY_ACTION,
    BLEND,
    DESCRIBE,
    EDIT_IMAGE,
    EXPORT_IMAGE,
    GET_TASK,
    IMAGINE,
    INPAINT_REGION,
)
from ..core.prompt import parse
from ..errors import MjMcpError
from ..media import Poster
from ..media.poster import ClipFacts
from ..records import PUBLIC_BY_KIND, PUBLIC_FIELDS, Record
from ..studio import Exported, Listing, Picture

SIM_TAG = "[simulated] "
PROMPT_HEAD = 48
URI_TEMPLATE = "mj://images/{name}"
# A video's clips, numbered 1-4 in upstream's order (as extend1-4 and export_image's clip number them).
CLIP_URI_TEMPLATE = "mj://videos/{name}/{clip}"


# What a texts record holds, by the operation that made it (its action), as its result's text says it.
TEXTS_MADE = {"describe": f"prompts for {IMAGINE}", "shorten": "shorter prompts", "translate": "in English"}


def uri_for(name: str) -> str:
    return URI_TEMPLATE.format(name=name)


def resource_of(record: Record) -> str | None:
    """The one resource of a record that holds one thing to read: a finished image, or texts (an edit has
    none of its own: each of its results is an image with its resource; a video's are its clips)."""
    if record.kind in (Kind.EDITS, Kind.VIDEOS):
        return None
    return uri_for(record.name) if record.media or record.as_text() is not None else None


def clip_uri(name: str, clip: int) -> str:
    return CLIP_URI_TEMPLATE.format(name=name, clip=clip)


def uris_of(record: Record) -> list[str]:
    """The resources a record is: a finished image's or texts' one, a video's clips (none before they exist)."""
    if record.kind is Kind.VIDEOS:
        return [clip_uri(record.name, n) for n in range(1, len(record.media) + 1)]
    uri = resource_of(record)
    return [uri] if uri else []


# The structured result of the generating tools and get_task: the record's public fields (declared once,
# on Record; those of other kinds than images are there only in their records), whether the image is
# simulated, its resource URI once it is finished, an edit's results by name, and a video's clips (one
# URI each).
_SHOWN = PUBLIC_FIELDS.union(*PUBLIC_BY_KIND.values())
ImageResult = create_model(  # type: ignore[call-overload]
    "ImageResult",
    **{name: (info.annotation, info) for name, info in Record.model_fields.items() if name in _SHOWN},
    simulated=(bool, False),
    uri=(str | None, None),
    results=(list[str] | None, None),
    clips=(list[str] | None, None),
)


def status_text(record: Record, results: list[str] | None = None) -> str:
    """One or two sentences about a record and what to do next; ``results``: an edit's, by name."""
    name = f'"{record.name}"'
    if record.status == "failed":
        err = record.error
        why = f"{err.code}: {err.message}" if err else "unknown error"
        return f"{record.name} failed ({why})."
    if record.status == "running":
        return (
            f"{record.name} is still generating ({record.progress:.0f}%) and goes on in the background. "
            f"To wait for it, call {GET_TASK}(ref={name}, wait_seconds=50)."
        )
    if record.kind is Kind.TEXTS:
        texts = record.prompts
        numbered = (f"{n}. {text}" for n, text in enumerate(texts, start=1))
        listed = "\n".join(numbered) if len(texts) > 1 else "".join(texts)
        return f"{record.name} is ready, {TEXTS_MADE.get(record.action, 'texts')}:\n{listed}"
    if record.kind is Kind.VIDEOS:
        return video_text(record, [])
    if record.kind is Kind.SEED:
        return f"{record.name} is ready: seed {record.seed}."
    if record.kind is Kind.EDITS:
        if not results:
            return f"{record.name} is ready: one picture, with no separate results from upstream."
        return (
            f"{record.name} is ready: {len(results)} results, 1-4 from top-left: {', '.join(results)}. "
            f"Each is an image for {IMAGINE}'s images, {BLEND}, {EDIT_IMAGE}, {DESCRIBE} or {ANIMATE}; "
            f"{APPLY_ACTION} has none."
        )
    if record.kind is Kind.EDITED:
        return (
            f"{record.name} is ready: one picture, a result of {record.parent or 'an edit'}. Next: "
            f"{EDIT_IMAGE}(image={name}, ...) to repaint it, or an image prompt; {APPLY_ACTION} has none."
        )
    size = f"{record.raw_width}x{record.raw_height}" if record.raw_width else "size unknown"
    if record.kind == Kind.GRID:
        return (
            f"{record.name} is ready: a 2x2 grid ({size}), quadrants 1-4 from top-left. "
            f'Next: {APPLY_ACTION}(image={name}, action="upscaleN" to take quadrant N out, '
            f'"variationN" to vary it, or "reroll").'
        ) + _seed(record)
    what = "upscaled image" if record.kind == Kind.UPSCALED else "single image"
    return (
        f"{record.name} is ready: one {what} ({size}). Next: {APPLY_ACTION}(image={name}, action=one of "
        f"{', '.join(record.actions) or 'none'}), or {INPAINT_REGION} to repaint a part."
    ) + _seed(record)


def _seed(record: Record) -> str:
    """An image's seed, once asked for (get_task with seed)."""
    return f" Seed {record.seed}: add --seed {record.seed} to its prompt to reproduce it." if record.seed else ""


def video_text(record: Record, clips: list[ClipFacts | None], *, poster: bool = False) -> str:
    """A finished video: what its clips are (what they were made from, how long, how large), where each is,
    and what to do next."""
    name = f'"{record.name}"'
    count = len(record.videos)
    extended = actions.BY_NAME.get(record.action)
    if extended is not None and extended.endpoint == "videos" and extended.quadrant and record.parent:
        made = f", each clip {extended.quadrant} of {record.parent} made longer"
    else:
        made = f" starting on {record.parent}" if record.parent else ""
    text = f"{record.name} is ready: {count} video clips{made}{_facts(clips)}, mj://videos/{record.name}/1-{count}."
    if poster:
        text += " The picture shows their first frames, 1-4 from top-left."
    return (
        f'{text} Next: {APPLY_ACTION}(image={name}, action="extendN") makes clip N ~4 s longer; '
        f"{EXPORT_IMAGE}(image={name}, clip=N, path=...) saves one."
    )


def _facts(clips: list[ClipFacts | None]) -> str:
    """ " (5.2 s, 832x464 each)", or clip by clip where they differ; nothing when unknown."""
    said = [_fact(f) if f is not None else None for f in clips]
    if not any(said):
        return ""
    if len(set(said)) == 1:
        return f" ({said[0]} each)"
    return " (" + "; ".join(f"{n}: {s or 'unknown'}" for n, s in enumerate(said, start=1)) + ")"


def _fact(clip: ClipFacts) -> str:
    size = f"{clip.width}x{clip.height}"
    return f"{clip.seconds:.1f} s, {size}" if clip.seconds else size


def _structured(
    record: Record, simulated: bool, uri: str | None = None, results: list[str] | None = None
) -> dict[str, Any]:
    shown = {**record.public(), "simulated": simulated, "uri": uri}
    if results is not None:
        shown["results"] = results
    if record.kind is Kind.VIDEOS:
        shown["clips"] = uris_of(record)
    return shown


def image_result(
    record: Record,
    *,
    simulated: bool,
    preview: bytes | None = None,
    note: str | None = None,
    mime: str | None = None,
    results: list[str] | None = None,
) -> CallToolResult:
    """The record; a finished image with a link to its resource, and ``preview`` (a JPEG thumbnail) to
    look at or ``note`` (one line on why there is none). An edit (``results``: the names of the images it
    made) links each of its results instead."""
    uri = resource_of(record)
    text = (SIM_TAG if simulated else "") + status_text(record, results)
    if note:
        text += f"\n{note}"
    content: list[TextContent | ImageContent | ResourceLink] = [TextContent(type="text", text=text)]
    if preview is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(preview).decode(), mime_type="image/jpeg"))
    # Texts are all in the text already: a link to them would only repeat them.
    if uri is not None and record.media:
        content.append(
            ResourceLink(type="resource_link", uri=uri, name=record.name, description="full-size image", mime_type=mime)
        )
    for n, name in enumerate(results or [], start=1):
        content.append(
            ResourceLink(
                type="resource_link", uri=uri_for(name), name=name, description=f"result {n}, full size", mime_type=mime
            )
        )
    return CallToolResult(content=content, structured_content=_structured(record, simulated, uri, results))


def video_result(record: Record, *, simulated: bool, poster: Poster | None = None) -> CallToolResult:
    """A finished video: what each clip is, its poster (the first frames, never a clip's bytes) and one
    link per clip."""
    shown = poster or Poster()
    text = (SIM_TAG if simulated else "") + video_text(record, shown.clips, poster=shown.jpeg is not None)
    if shown.note:
        text += f"\n{shown.note}"
    content: list[TextContent | ImageContent | ResourceLink] = [TextContent(type="text", text=text)]
    if shown.jpeg is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(shown.jpeg).decode(), mime_type="image/jpeg"))
    for n, uri in enumerate(uris_of(record), start=1):
        content.append(
            ResourceLink(
                type="resource_link",
                uri=uri,
                name=f"{record.name} clip {n}",
                description=f"clip {n}, MP4",
                mime_type="video/mp4",
            )
        )
    return CallToolResult(content=content, structured_content=_structured(record, simulated))


def error_result(exc: MjMcpError, *, simulated: bool, record: Record | None = None) -> CallToolResult:
    """A tool error the model can act on, never a stack trace (upstream text arrives with the token
    already masked). With ``record`` (a task that existed upstream and failed) the failed record is
    returned as structured content too."""
    text = (SIM_TAG if simulated else "") + str(exc)
    structured = None
    if record is not None:
        text += f" Recorded as {record.name}."
        structured = _structured(record, simulated)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured, is_error=True)


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


def summarize(record: Record) -> ImageSummary:
    size = f"{record.raw_width}x{record.raw_height}" if record.raw_width and record.raw_height else None
    # A describe has no prompt of its own: its first text stands for it.
    prompt = record.prompt or next(iter(record.prompts), None)
    head = parse(prompt).text if prompt else None  # the words: no image URLs, no flags
    if head and len(head) > PROMPT_HEAD:
        head = head[: PROMPT_HEAD - 1].rstrip() + "…"
    return ImageSummary(
        name=record.name,
        kind=record.kind.value if record.kind else None,
        size=size,
        status=record.status,
        parent=record.parent,
        prompt=head,
    )


def _line(s: ImageSummary) -> str:
    what = ", ".join(
        x
        for x in (
            s.kind,
            s.size,
            s.status if s.status != "completed" else None,
            f"from {s.parent}" if s.parent else None,
        )
        if x
    )
    return f"{s.name}: {what}" + (f' "{s.prompt}"' if s.prompt else "")


def list_result(listing: Listing) -> CallToolResult:
    """``list_images``: one line per image, newest first: the model's memory of a long conversation."""
    shown = [summarize(r) for r in listing.records]
    if not shown:
        text = f"No images yet in this workspace: start with {IMAGINE}."
    else:
        text = "\n".join(_line(s) for s in shown)
        if listing.total > len(shown):
            text += f"\n… {listing.total - len(shown)} older; raise limit to see them."
    result = ImageList(images=shown, total=listing.total)
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )


class ExportResult(BaseModel):
    image: str
    path: str
    bytes: int
    mime: str


def export_result(done: Exported) -> CallToolResult:
    result = ExportResult(image=done.name, path=done.path, bytes=done.size, mime=done.mime)
    text = f"Saved {done.name} to {done.path} ({done.size:,} bytes)."
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )


def picture_result(picture: Picture, *, simulated: bool) -> CallToolResult:
    """``view_image`` (the App's): the record plus what is shown (``preview``), and the JPEG when there
    is one."""
    record = picture.record
    uri = resource_of(record)
    structured = {**_structured(record, simulated, uri, picture.results), "preview": picture.shown}
    content: list[TextContent | ImageContent] = [
        TextContent(type="text", text=f"{record.name}: {record.status} ({record.progress:.0f}%)")
    ]
    if picture.jpeg is not None:
        content.append(ImageContent(type="image", data=base64.b64encode(picture.jpeg).decode(), mime_type="image/jpeg"))
    return CallToolResult(content=content, structured_content=structured)
