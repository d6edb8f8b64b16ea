"""extend1-4 (through apply_action): one of a finished video's four clips made about 4 s longer, as four
new clips, with the video's own prompt (Midjourney's "Extend Auto"): ``/midjourney/videos`` ``extend``
with the video's id and the clip's index (0-3). ``action.py`` has checked that the record is a finished
video and that the action is one of the catalogue's extends."""

from __future__ import annotations

from ..core.actions import Action
from ..records import Record
from ..upstream import requests as endpoints
from ..upstream.requests import VideosBody
from .calls import Call, Mode
from .plans import Plan, checked_video_mode


async def plan_extend(call: Call, source: Record, entry: Action, *, mode: Mode, name: str | None) -> Plan:
    """The plan of ``entry`` (extendN) on the finished video ``source``."""
    checked_video_mode(mode)
    if entry.quadrant is None or source.video_id is None:
        raise TypeError(f"{entry.name} on {source.name}: not an extend of a finished video")
    record = Record(
        name=await call.workspace.name_for(requested=name, parent=source.name, action=entry.name),
        kind=entry.makes,
        parent=source.name,
        parent_id=source.id,
        action=entry.name,
        prompt=source.prompt,
    )
    body = VideosBody(
        action="extend",
        prompt=source.prompt,
        video_id=source.video_id,
        video_index=entry.quadrant - 1,
        mode=mode,
    )
    return Plan(record, endpoints.VIDEOS, body, name is not None)
