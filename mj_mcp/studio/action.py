"""apply_action: one of Midjourney's follow-ups on an earlier image (upscale, vary, reroll, zoom, pan),
only those the image itself offers (the action catalogue, ``core/actions.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..core import actions
from ..core.actions import FollowUp
from ..core.operations import APPLY_ACTION
from ..errors import ActionNotAllowed, InvalidInput, quote
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import ImagineBody
from .calls import Call, ImageRef, Mode, Name, Wait, runs
from .plans import Plan, finished


@runs(APPLY_ACTION)
async def apply_action(
    call: Call,
    image: ImageRef,
    action: Annotated[FollowUp, Field(description="One of the image's actions (see its result)")],
    name: Name = None,
    mode: Mode = "fast",
    wait_seconds: Wait = None,
) -> Record:
    """Upscale, vary, reroll, zoom out or pan an earlier image."""
    plan = await plan_action(call, image=image, action=action, mode=mode, name=name)
    return await call.generate(plan, wait_seconds)


async def plan_action(call: Call, *, image: str, action: str, mode: Mode, name: str | None) -> Plan:
    source = await finished(call, image)
    entry = actions.BY_NAME.get(action)
    if entry is None or entry.tool != APPLY_ACTION:
        raise InvalidInput(f"unknown action {quote(action)}", next_step=f"Use one of: {', '.join(source.actions)}.")
    if not actions.allowed_on(entry, source.actions, source.kind):
        raise ActionNotAllowed(
            f"{action} is not available on {source.name}",
            next_step=f"Use one of: {', '.join(source.actions) or 'none'}.",
        )
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
