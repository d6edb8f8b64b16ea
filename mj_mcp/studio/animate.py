"""animate: Midjourney's video, four short clips (about 5 s) that start on an image (a name or an https
URL) and move as the prompt says (``/midjourney/videos`` ``generate``). A clip is made longer with
apply_action's extendN (``extend.py``); the clips, their poster and their resources are the media's and
the server's."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from ..core import prompt as prompts
from ..core.kinds import Kind
from ..core.operations import ANIMATE, IMAGINE
from ..errors import InvalidInput, quote
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import VideosBody
from .calls import MAX_PROMPT, Call, ImageRef, Mode, Name, Wait, runs
from .plans import VIDEO_MODES, Plan, checked_video_mode, source

# The model is offered the modes video has; relax is still read, to be refused with the next step.
VideoMode = Annotated[Mode, WithJsonSchema({"enum": list(VIDEO_MODES), "type": "string"})]
Resolution = Literal["480p", "720p"]
# Midjourney's video flags that /videos takes as fields, or not at all: what to use instead.
FIELDED = {
    "--loop": "use loop=true",
    "--end": "give the last frame as end_image",
    "--bs": "a video is always four clips",
    "--video": "animate makes a video already",
}


@runs(ANIMATE)
async def animate(
    call: Call,
    image: Annotated[ImageRef, Field(description="First frame: name or https URL")],
    # Its length is checked with its flags (checked_video_prompt): the schema stays short.
    prompt: Annotated[str, Field(description="How it moves; --motion low|high")],
    end_image: Annotated[str | None, Field(description="Last frame")] = None,
    loop: bool = False,
    resolution: Resolution | None = None,
    mode: VideoMode = "fast",
    name: Name = None,
    wait_seconds: Wait = None,
) -> Record:
    """Four ~5 s video clips starting on an image."""
    plan = await plan_animate(
        call, image=image, prompt=prompt, end_image=end_image, loop=loop, resolution=resolution, mode=mode, name=name
    )
    return await call.generate(plan, wait_seconds)


async def plan_animate(
    call: Call,
    *,
    image: str,
    prompt: str,
    end_image: str | None,
    loop: bool,
    resolution: Resolution | None,
    mode: Mode,
    name: str | None,
) -> Plan:
    if not image.strip():
        if end_image:
            raise InvalidInput(
                "end_image is a video's last frame, and its first (image) is missing",
                next_step="Give image too: a video starts on a picture, a name or an https URL.",
            )
        raise InvalidInput(
            "animate needs image: a video starts on a picture (there is no text-to-video)",
            next_step=f"Give an image's name or an https URL; {IMAGINE} makes one.",
        )
    checked_video_mode(mode)
    if loop and end_image:
        raise InvalidInput("loop and end_image together: a loop ends on its first frame", next_step="Keep one of them.")
    text = checked_video_prompt(prompt)
    given = await source(call, image)
    start_url, start = given.url, given.record
    ending = await source(call, end_image) if end_image else None
    end_url, end = (ending.url, ending.record) if ending else (None, None)
    record = Record(
        name=await call.workspace.name_for(
            requested=name, parent=start.name if start else None, action="animate", prompt=text, fallback="video"
        ),
        kind=Kind.VIDEOS,
        action="animate",
        prompt=text,
        parent=start.name if start else None,
        parent_id=start.id if start else None,
        sources=[r.name if r else url for url, r in ((start_url, start), (end_url, end)) if url],
    )
    body = VideosBody(
        prompt=text,
        image_url=start_url,
        end_image_url=end_url,
        loop=True if loop else None,
        resolution=resolution,
        # Checked above: fast or turbo.
        mode="turbo" if mode == "turbo" else "fast",
    )
    return Plan(record, endpoints.VIDEOS, body, name is not None)


def checked_video_prompt(text: str) -> str:
    """A video's prompt, or refused: too long, image URLs in it, flags a video does not take (with what
    to use instead: a field of animate, the flag meant)."""
    text = text.strip()
    if not text:
        raise InvalidInput("the prompt is empty", next_step="Say how the picture moves, e.g. 'the camera drifts left'.")
    if len(text) > MAX_PROMPT:
        raise InvalidInput(f"prompt is {len(text):,} characters; at most {MAX_PROMPT}")
    parsed = prompts.parse(text, prompts.VIDEO_SPELLINGS)
    fielded = [t for t in parsed.unknown if t.lower() in FIELDED]
    rest = dataclasses.replace(parsed, unknown=[t for t in parsed.unknown if t not in fielded])
    problems = [f"{quote(t)}: {FIELDED[t.lower()]}" for t in fielded] + prompts.problems(rest, prompts.VIDEO_SPELLINGS)
    motion = parsed.flag("motion")
    if motion is not None and motion.lower() not in ("low", "high"):
        problems.append(f"--motion {quote(motion)}: low or high")
    if parsed.urls:
        problems.append("an image URL leads the prompt: give the first frame as image")
    if problems:
        raise InvalidInput(
            "prompt refused before sending: " + "; ".join(problems) + ".",
            next_step="A video's prompt takes words, --motion low|high and --raw; fix it and call again.",
        )
    return text
