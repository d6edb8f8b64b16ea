"""blend: 2-5 images (names or https URLs) into a new grid; upstream has no blend of its own, it is a
``generate`` whose prompt starts with the images' URLs (docs/upstream.md, "Prompts")."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core import naming
from ..core import prompt as prompts
from ..core.kinds import Kind
from ..core.operations import BLEND
from ..errors import InvalidInput
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import ImagineBody
from .calls import MAX_PROMPT, Call, Mode, Name, Wait, runs
from .plans import Plan, checked_prompt, image_url


@runs(BLEND)
async def blend(
    call: Call,
    images: Annotated[list[str], Field(min_length=2, max_length=5, description="Names or https URLs")],
    prompt: Annotated[str | None, Field(max_length=MAX_PROMPT, description="Text to steer the blend")] = None,
    aspect_ratio: Annotated[str | None, Field(pattern=r"^\d{1,2}:\d{1,2}$", description="W:H (--ar)")] = None,
    mode: Mode = "fast",
    name: Name = None,
    wait_seconds: Wait = None,
) -> Record:
    """Blend 2-5 images into a new 2x2 grid."""
    plan = await plan_blend(call, images=images, prompt=prompt, aspect_ratio=aspect_ratio, mode=mode, name=name)
    return await call.generate(plan, wait_seconds)


async def plan_blend(
    call: Call, *, images: list[str], prompt: str | None, aspect_ratio: str | None, mode: Mode, name: str | None
) -> Plan:
    if not 2 <= len(images) <= prompts.MAX_IMAGE_URLS:
        raise InvalidInput(f"a blend takes 2-{prompts.MAX_IMAGE_URLS} images, not {len(images)}")
    parsed = checked_prompt(prompt or "")
    if parsed.urls:
        raise InvalidInput("put images in images=, not in the prompt")
    if aspect_ratio and parsed.flag("ar") is not None:
        raise InvalidInput("--ar is both in the prompt and aspect_ratio", next_step="Keep one of the two.")
    refs = [await image_url(call, r) for r in images]
    text = prompts.compose([u for u, _ in refs], prompt or "", [("ar", aspect_ratio)] if aspect_ratio else [])
    roots = list(dict.fromkeys(label.split(".")[0] for _, label in refs if not label.startswith("https://")))[:2]
    base = naming.slug(prompt) if parsed.text and prompt else "-".join(["blend", *roots])
    record = Record(
        name=await call.workspace.name_for(requested=name, fallback=base),
        prompt=text,
        kind=Kind.GRID,
        sources=[label for _, label in refs],
    )
    return Plan(record, endpoints.IMAGINE, ImagineBody(prompt=text, mode=mode), name is not None)
