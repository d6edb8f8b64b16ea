"""edit_image: repaint any picture as a prompt says (``/midjourney/edits``), one Midjourney did not make
too (an https URL, or an image by name), wholly or where a region or mask says, as ``inpaint_region``
takes them. An edit makes four results; once it completes each is an image of its own, named
``<edit>.1`` to ``.4`` (``records.results_of``), usable wherever a picture is.

A region becomes a mask at the picture's size: an image's record knows it (or its cached picture does:
an edit's result), and for a URL its header says it, its first bytes only, fetched by the download
guard's rules (``Media.size_at``).
"""

from __future__ import annotations

from typing import Annotated

import anyio
from pydantic import Field, WithJsonSchema

from ..core import masks
from ..core.kinds import Kind
from ..core.operations import EDIT_IMAGE, IMAGINE, INPAINT_REGION
from ..errors import ImageUnavailable, InvalidInput, quote
from ..records import EDIT_ACTION, Record
from ..upstream import requests as endpoints
from ..upstream.requests import EditsBody
from .calls import MAX_PROMPT, Call, Mode, Name, Wait, runs
from .inpaint import Mask, Region
from .plans import Plan, Source, checked_prompt, source

# The region and mask are inpaint_region's, checked the same way; what the model reads points there,
# since the full schema of shapes is the longest piece of the tool list and would be read twice a turn.
SameRegion = Annotated[Region, WithJsonSchema({"type": "array"}), Field(description=f"As {INPAINT_REGION}'s")]
SameMask = Annotated[Mask, WithJsonSchema({"type": "string"}), Field(description=f"As {INPAINT_REGION}'s")]
# The same wait as every generating tool's, bounds included; described once, in imagine.
SameWait = Annotated[Wait, WithJsonSchema({"type": "number"}), Field(description=f"As {IMAGINE}'s")]
# The prompt's bounds are checked (checked_prompt); published, they would say nothing the model needs.
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT), WithJsonSchema({"type": "string"})]


@runs(EDIT_IMAGE)
async def edit_image(
    call: Call,
    image: Annotated[str, Field(description="A name or https URL")],
    prompt: Prompt,
    region: SameRegion = None,
    mask: SameMask = None,
    mode: Mode = "fast",
    name: Name = None,
    wait_seconds: SameWait = None,
) -> Record:
    """Repaint any picture, wholly or in a region: 4 results."""
    plan = await plan_edit(call, image=image, prompt=prompt, region=region, mask=mask, mode=mode, name=name)
    return await call.generate(plan, wait_seconds)


async def plan_edit(
    call: Call,
    *,
    image: str,
    prompt: str,
    region: list[masks.Shape] | None,
    mask: str | None,
    mode: Mode,
    name: str | None,
) -> Plan:
    if not prompt.strip():
        raise InvalidInput(
            "an edit needs a prompt: what to paint (upstream requires one)",
            next_step=f'Call {EDIT_IMAGE}(image=..., prompt="what the picture, or the region, should show").',
        )
    checked_prompt(prompt)
    if region is not None and mask is not None:
        raise InvalidInput("give one of region and mask, not both")
    given = await source(call, image)
    encoded = None
    if region is not None or mask is not None:
        width, height = await picture_size(call, given)
        # Decoding an upload and rasterising shapes are CPU work, bounded in masks.build: off the event loop.
        encoded, _ = await anyio.to_thread.run_sync(
            lambda: masks.build(region=region, mask=mask, width=width, height=height)
        )
    parent = given.record
    record = Record(
        # A picture given by URL starts a lineage: its edit is named by the prompt alone.
        name=await call.workspace.name_for(
            requested=name,
            parent=parent.name if parent else None,
            prompt=prompt,
            suffix=EDIT_ACTION if parent else None,
        ),
        kind=Kind.EDITS,
        action=EDIT_ACTION,
        prompt=prompt,
        parent=parent.name if parent else None,
        parent_id=parent.id if parent else None,
        # A picture that is no image of ours is named by its URL.
        sources=[] if parent else [given.url],
    )
    # split_images: the four results come one by one only when asked for (docs/upstream.md, "/edits").
    body = EditsBody(image_url=given.url, prompt=prompt, mask=encoded, mode=mode, split_images=True)
    return Plan(record, endpoints.EDITS, body, name is not None)


async def picture_size(call: Call, given: Source) -> tuple[int, int]:
    """The full size of the picture to edit, which a region's mask is drawn at."""
    media = call.studio.media
    try:
        if given.record is not None:
            return await media.size(given.record)
        upstream = call.studio.upstreams.for_workspace(call.workspace.key)
        return await media.size_at(given.url, upstream=upstream)
    # A refused or failed download, or bytes that are no picture.
    except ImageUnavailable as exc:
        raise InvalidInput(
            f"the size of {quote(given.label)} could not be read ({exc.message}), and a region needs it",
            next_step="Edit the whole picture (no region or mask), or give a picture its server serves.",
        ) from None
