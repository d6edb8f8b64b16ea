"""inpaint_region: repaint part of a single image (Midjourney's Vary (Region), ``variation_region``),
given as shapes in fractions of the image or as a mask image; the mask upstream wants is drawn here, at
the image's raw size."""

from __future__ import annotations

from typing import Annotated

import anyio
from pydantic import Field

from ..core import actions, masks
from ..core.operations import APPLY_ACTION, INPAINT_REGION
from ..errors import ActionNotAllowed, InvalidInput
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import ImagineBody
from .calls import MAX_PROMPT, Call, ImageRef, Name, Wait, runs
from .plans import Plan, checked_prompt, finished

# The region and mask parameters, as every tool that repaints part of a picture takes them.
Region = Annotated[
    masks.Region | None,
    Field(
        description="Shapes in fractions 0-1 of the image, origin top-left, "
        'e.g. [{"shape":"ellipse","box":[0.1,0.5,0.4,0.9]}]'
    ),
]
Mask = Annotated[str | None, Field(description="Instead of region: base64 or data: URL image, white = repaint")]


@runs(INPAINT_REGION)
async def inpaint_region(
    call: Call,
    image: ImageRef,
    region: Region = None,
    mask: Mask = None,
    prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="What to paint there.")] = None,
    name: Name = None,
    wait_seconds: Wait = None,
) -> Record:
    """Repaint a region of a single (upscaled) image; the rest stays (variation_region)."""
    plan = await plan_inpaint(call, image=image, region=region, mask=mask, prompt=prompt, name=name)
    return await call.generate(plan, wait_seconds)


async def plan_inpaint(
    call: Call, *, image: str, region: list[masks.Shape] | None, mask: str | None, prompt: str | None, name: str | None
) -> Plan:
    if (region is None) == (mask is None):
        raise InvalidInput("give exactly one of region and mask")
    source = await finished(call, image)
    repaint = actions.get("variation_region")
    if not actions.allowed_on(repaint, source.actions, source.kind):
        raise ActionNotAllowed(
            f"{source.name} is a {source.kind or 'unknown'} image; only a single image can be repainted",
            next_step=f'Upscale a quadrant first: {APPLY_ACTION}(image="{source.name}", action="upscale1").',
        )
    if not (source.raw_width and source.raw_height):
        raise InvalidInput(f"the size of {source.name} is unknown, so no mask can be made")
    if prompt:
        checked_prompt(prompt)
    width, height = source.raw_width, source.raw_height
    # Decoding an upload and rasterising shapes are CPU work, bounded in masks.build: off the event loop.
    encoded, _ = await anyio.to_thread.run_sync(
        lambda: masks.build(region=region, mask=mask, width=width, height=height)
    )
    record = Record(
        name=await call.workspace.name_for(requested=name, parent=source.name, action=repaint.name),
        parent=source.name,
        parent_id=source.id,
        action=repaint.name,
        kind=repaint.makes,
        prompt=prompt or source.prompt,
    )
    body = ImagineBody(action=repaint.name, image_id=source.image_id, mask=encoded, prompt=prompt or None)
    return Plan(record, endpoints.IMAGINE, body, name is not None)
