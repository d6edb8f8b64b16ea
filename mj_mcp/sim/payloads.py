"""What upstream sends for a task, per endpoint: the object of each progress step and the final one
(docs/upstream.md, "The reply object" and "The simulator"), with the images and videos the final one
registers. The same object is a synchronous reply, a stream line, a task record's ``response`` and a
callback body.

- imagine: the guide's 11 keys (``sub_image_urls`` with ``split_images``); each progress step a blurry
  preview with a fresh ``image_id`` and ``actions: []``.
- edits: the edits guide's keys, in its order: no ``actions``; the image is the whole grid (``image_url``
  is ``raw_image_url``); ``sub_image_urls`` with ``split_images``; previews as for imagine.
- videos: the videos guide's keys: the cover ``image_url`` and its size, ``video_id``, four
  ``video_urls``; progress steps carry ``progress`` alone (**inferred**: undocumented).
- describe: ``descriptions``, with ``task_id`` and ``success`` (**inferred**: the guide shows
  ``descriptions`` alone).
"""

from __future__ import annotations

from typing import Any

from ..core import actions
from ..core.actions import Kind
from . import cdn
from .geometry import Size, fit_long_side, half
from .records import SimImage, SimTask, SimVideo
from .state import SimState


def image_payload(
    task: SimTask, *, image_url: str, size: Size, image_id: str, raw_url: str, raw: Size, progress: int, acts: list[str]
) -> dict[str, Any]:
    """The documented 11 keys, in the guide's order."""
    return {
        "image_url": image_url,
        "image_width": size[0],
        "image_height": size[1],
        "image_id": image_id,
        "raw_image_url": raw_url,
        "raw_image_width": raw[0],
        "raw_image_height": raw[1],
        "progress": progress,
        "actions": acts,
        "task_id": task.id,
        "success": True,
    }


def progress_payload(state: SimState, task: SimTask, p: int) -> dict[str, Any]:
    """An intermediate object. Called holding ``state.lock``."""
    if task.type not in ("imagine", "edits"):
        return {"progress": p, "task_id": task.id, "success": True}
    if state.config.stable_intermediate_image_id and task.events:
        image_id = task.events[0]["image_id"]
    else:
        image_id = state.ids.image_id()
    raw = fit_long_side(task.result.get("raw", (1024, 1024)), 512)
    thumb = half(raw)
    preview = cdn.preview_url(task)
    payload = image_payload(
        task,
        image_url=f"{preview}?width={thumb[0]}&height={thumb[1]}",
        size=thumb,
        image_id=image_id,
        raw_url=preview,
        raw=raw,
        progress=p,
        acts=[],
    )
    if task.type == "edits":
        del payload["actions"]
    return payload


def final_payload(state: SimState, task: SimTask) -> tuple[dict[str, Any], SimImage | None, SimVideo | None]:
    """The final object, and the image or video it registers (not yet). Called holding ``state.lock``."""
    image: SimImage | None = None
    video: SimVideo | None = None
    if task.type == "describe":
        payload: dict[str, Any] = {
            "descriptions": list(task.result["descriptions"]),
            "task_id": task.id,
            "success": True,
        }
    elif task.type == "videos":
        video, payload = _video(state, task)
    elif task.type == "edits":
        image, payload = _edit(state, task)
    else:
        image, payload = _image(state, task)
    if state.config.include_trace_in_success:
        payload["trace_id"] = task.trace_id
    return payload, image, video


def _new_image(state: SimState, task: SimTask, acts: tuple[str, ...]) -> SimImage:
    assert task.recipe is not None and task.kind is not None
    r = task.result
    return SimImage(
        image_id=state.ids.image_id(),
        task_id=task.id,
        kind=task.kind,
        actions=acts,
        raw=r["raw"],
        thumb=r["thumb"],
        cell=r["cell"],
        recipe=task.recipe,
        text=r["text"],
        urls=r["urls"],
        base_single=r.get("base_single"),
        secret=state.url_secret(),
    )


def _tiles(task: SimTask, image: SimImage) -> list[str]:
    return [cdn.tile_url(task.base_url, image, k) for k in range(4)]


def _image(state: SimState, task: SimTask) -> tuple[SimImage, dict[str, Any]]:
    assert task.kind is not None
    image = _new_image(state, task, actions.ACTIONS_AFTER[task.kind])
    url = cdn.image_url(task.base_url, image)
    payload = image_payload(
        task,
        image_url=f"{url}?width={image.thumb[0]}&height={image.thumb[1]}",
        size=image.thumb,
        image_id=image.image_id,
        raw_url=url,
        raw=image.raw,
        progress=100,
        acts=list(image.actions),
    )
    if task.request.get("split_images") is True and image.kind == Kind.GRID:
        payload["sub_image_urls"] = _tiles(task, image)
    return image, payload


def _edit(state: SimState, task: SimTask) -> tuple[SimImage, dict[str, Any]]:
    image = _new_image(state, task, ())
    url = cdn.image_url(task.base_url, image)
    payload: dict[str, Any] = {}
    if task.request.get("split_images") is True:
        payload["sub_image_urls"] = _tiles(task, image)
    payload.update(
        {
            "image_url": url,
            "image_width": image.raw[0],
            "image_height": image.raw[1],
            "raw_image_url": url,
            "raw_image_width": image.raw[0],
            "raw_image_height": image.raw[1],
            "progress": 100,
            "image_id": image.image_id,
            "task_id": task.id,
            "success": True,
        }
    )
    return image, payload


def _video(state: SimState, task: SimTask) -> tuple[SimVideo, dict[str, Any]]:
    assert task.footage is not None
    video = SimVideo(state.ids.video_id(), task.id, task.footage, secret=state.url_secret())
    size = task.footage.size
    payload = {
        "image_url": cdn.cover_url(task.base_url, video),
        "image_width": size[0],
        "image_height": size[1],
        "progress": 100,
        "video_id": video.video_id,
        "video_urls": [cdn.clip_url(task.base_url, video, k) for k in range(4)],
        "task_id": task.id,
        "success": True,
    }
    return video, payload
