"""view_image (the MCP App's own): a display-size JPEG of a finished image (of a video, its poster: the
first frames of its clips, 1-4 from top-left), or of the partial picture upstream streams while it runs.
A host's CSP keeps the view from the CDN's URLs, so its pixels come from here: the finished image from
the media (cached on disk), a partial one from its short-lived URL; the renditions are remembered
(``Media``), so the view's polls and a gallery's thumbnails cost one decode each."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from ..core.kinds import Kind
from ..core.operations import VIEW_IMAGE
from ..errors import FetchFailed, ImageUnavailable
from ..records import Record
from .calls import Call, ImageRef, runs

log = logging.getLogger("mj_mcp.studio")

# The view's pictures: long side bounds.
PICTURE_PX = (64, 2048)
# A partial picture is a nicety: a poll never waits longer for one.
PARTIAL_FETCH_S = 10.0


@dataclass
class Picture:
    """What the MCP App's view shows of an image: the record, and a JPEG of the finished image
    (``shown`` "final") or of upstream's latest partial one while it runs ("intermediate"); no JPEG
    when there is nothing to show yet or it cannot be had (the view keeps what it shows)."""

    record: Record
    jpeg: bytes | None = None
    shown: Literal["final", "intermediate"] | None = None
    # An edit's results by name, 1-4 as its picture shows them.
    results: list[str] | None = None


@runs(VIEW_IMAGE)
async def view_image(
    call: Call,
    image: ImageRef,
    max_px: Annotated[int, Field(ge=PICTURE_PX[0], le=PICTURE_PX[1])] = 1024,
) -> Picture:
    """The view's picture of an image: its record, and a JPEG of the finished image (a video's poster), or
    of upstream's latest partial picture while it runs."""
    media = call.studio.media
    record = await call.studio.jobs.current(await call.workspace.resolve(image))
    px = min(max(max_px, PICTURE_PX[0]), PICTURE_PX[1])
    try:
        if record.status == "completed" and record.kind is Kind.VIDEOS and record.media:
            return Picture(record, await media.poster_rendition(record, px), "final")
        if record.status == "completed" and record.is_image and record.media:
            key = f"final:{record.image_id}:{record.media[0].url}"
            return Picture(record, await media.rendition(key, px, lambda: media.original(record)), "final")
        if record.status == "completed" and record.kind is Kind.EDITS and record.media:
            # An edit: its results side by side, labelled 1-4 as a grid's quadrants are.
            results = [r.name for r in await call.workspace.results(record)]
            jpeg, _ = await media.sheet(record, px)
            return Picture(record, jpeg, "final", results)
        if record.status == "running" and record.preview_url:
            partial = record.preview_url
            # The URL may stay the same from step to step while its picture sharpens: the progress is in the key.
            key = f"partial:{record.progress:g}:{partial}"
            upstream = call.studio.upstreams.for_workspace(call.workspace.key)
            jpeg = await media.rendition(
                key, px, lambda: media.fetch(partial, timeout=PARTIAL_FETCH_S, upstream=upstream)
            )
            return Picture(record, jpeg, "intermediate")
    # Pillow's UnidentifiedImageError is an OSError.
    except (ImageUnavailable, FetchFailed, TimeoutError, OSError, ValueError) as exc:
        log.info("no picture of %s: %s", record.name, type(exc).__name__)
    return Picture(record)
