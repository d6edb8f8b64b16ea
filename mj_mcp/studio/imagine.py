"""imagine: a 2x2 grid from a prompt, and up to five image prompts (names or https URLs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core import prompt as prompts
from ..core.kinds import Kind
from ..core.operations import IMAGINE
from ..errors import InvalidInput
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import ImagineBody
from .calls import MAX_PROMPT, Call, Mode, Name, Wait, runs
from .plans import Plan, checked_prompt, image_url

Prompt = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_PROMPT,
        description="What to draw, then any of --v --s --c --q --seed --no --style raw --tile",
    ),
]
ImagePrompts = Annotated[list[str], Field(max_length=5, description="Image prompts: names or https URLs")]
AspectRatio = Annotated[str | None, Field(pattern=r"^\d{1,2}:\d{1,2}$", description="W:H, e.g. 16:9")]


@runs(IMAGINE)
async def imagine(
    call: Call,
    prompt: Prompt,
    images: ImagePrompts = [],  # noqa: B006 (the schema's default; never mutated)
    aspect_ratio: AspectRatio = None,
    mode: Mode = "fast",
    # Upstream translates a non-English prompt.
    translation: bool = False,
    name: Name = None,
    wait_seconds: Wait = None,
) -> Record:
    """A 2x2 grid of four candidates from a prompt (quadrants 1-4 from top-left)."""
    # Midjourney's other options stay prompt flags, checked locally like every flag: typed copies of
    # them would cost the tool list a tenth of its budget and say nothing the flags do not.
    plan = await plan_imagine(
        call, prompt=prompt, images=images, aspect_ratio=aspect_ratio, mode=mode, translation=translation, name=name
    )
    return await call.generate(plan, wait_seconds)


async def plan_imagine(
    call: Call,
    *,
    prompt: str,
    images: list[str],
    aspect_ratio: str | None,
    mode: Mode,
    translation: bool,
    name: str | None,
) -> Plan:
    parsed = checked_prompt(prompt)
    if aspect_ratio and parsed.flag("ar") is not None:
        raise InvalidInput("--ar is both in the prompt and aspect_ratio", next_step="Keep one of the two.")
    refs = [await image_url(call, r) for r in images]
    if len(refs) + len(parsed.urls) > prompts.MAX_IMAGE_URLS:
        raise InvalidInput(f"{len(refs) + len(parsed.urls)} image prompts; at most {prompts.MAX_IMAGE_URLS}")
    text = prompts.compose([u for u, _ in refs], prompt, [("ar", aspect_ratio)] if aspect_ratio else [])
    record = Record(
        name=await call.workspace.name_for(requested=name, prompt=prompt),
        prompt=text,
        kind=Kind.GRID,
        sources=[label for _, label in refs],
    )
    body = ImagineBody(prompt=text, mode=mode, translation=True if translation else None)
    return Plan(record, endpoints.IMAGINE, body, name is not None)
