"""apply_action: one of Midjourney's follow-ups on an earlier image (upscale, vary, reroll, zoom, pan) or
video (extend a clip), only those the record itself offers (the action catalogue, ``core/actions.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core import actions
from ..core.actions import FollowUp
from ..core.kinds import Kind
from ..core.operations import ANIMATE, APPLY_ACTION
from ..errors import ActionNotAllowed, InvalidInput, quote
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import ImagineBody
from .calls import Call, ImageRef, Mode, Name, Wait, runs
from .extend import plan_extend
from .plans import Plan, actionable


@runs(APPLY_ACTION)
async def apply_action(
    call: Call,
    image: ImageRef,
    action: Annotated[FollowUp, Field(description="One of the image's actions (see its result)")],
    name: Name = None,
    mode: Mode = "fast",
    wait_seconds: Wait = None,
) -> Record:
    """Upscale, vary, reroll, zoom out or pan an earlier image; extend a video's clip."""
    plan = await plan_action(call, image=image, action=action, mode=mode, name=name)
    return await call.generate(plan, wait_seconds)


async def plan_action(call: Call, *, image: str, action: str, mode: Mode, name: str | None) -> Plan:
    source = await actionable(call, image)
    offered = actions.offered_on(source.actions, source.kind)
    entry = actions.BY_NAME.get(action)
    if entry is None or entry.tool != APPLY_ACTION:
        raise InvalidInput(f"unknown action {quote(action)}", next_step=f"Use one of: {', '.join(offered) or 'none'}.")
    if not actions.allowed_on(entry, source.actions, source.kind):
        raise ActionNotAllowed(
            f"{action} is not available on {source.name}{_because(entry, source)}",
            next_step=f"Use one of: {', '.join(offered) or 'none'}.",
        )
    if entry.endpoint == endpoints.VIDEOS.name:
        return await plan_extend(call, source, entry, mode=mode, name=name)
    record = Record(
        name=await call.workspace.name_for(requested=name, parent=source.name, action=action),
        kind=entry.makes,
        parent=source.name,
        parent_id=source.id,
        action=action,
        prompt=source.prompt,
    )
    body = ImagineBody(action=action, image_id=source.image_id, mode=mode)
    return Plan(record, endpoints.IMAGINE, body, name is not None)


def _because(entry: actions.Action, source: Record) -> str:
    """Why, when the action is for another kind of record: an image's on a video, a video's on an image."""
    if source.kind is Kind.VIDEOS:
        return ": it is a video, whose clips extend1-4 make longer"
    if entry.makes is Kind.VIDEOS:
        return f": it is an image, and {entry.name} extends a video's clip ({ANIMATE} makes a video of it)"
    return ""
