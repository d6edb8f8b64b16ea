"""The CDN stand-in: the URL of every image and video the simulator serves, the way back from a URL
to the picture, and the serving itself (raw images, thumbnails, quadrant tiles, live previews, video
covers and MP4 clips).

URLs look like upstream's in what clients rely on: ``<image_id>.png`` (``?width=&height=`` for the
thumbnail), ``<image_id>/0_<k>.png`` tiles, ``<task_id>_grid_0.webp`` previews, and under
``/__fake/video/``, ``<video_id>/0_<k>.mp4`` clips and a ``<video_id>.png`` cover. A standalone simulator
names them under the base URL each request came to. An embedded one names them under ``PUBLIC_ORIGIN``,
a fixed https origin that resolves nowhere (``.invalid``, RFC 6761): its port changes with every start
while the server's records keep the URLs, so the server's client fetches that origin from wherever the
simulator listens now (``Upstream(api_alias=...)``). It also puts a random 128-bit part in front of each
path (``<secret>/<image_id>.png``), one per image, video or task: another local program can reach the
port, and knowing one URL must not give the others.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import Response

from .bodies import SimError, error_response
from .geometry import Size, half
from .records import SimImage, SimTask, SimVideo

if TYPE_CHECKING:
    from .state import SimState

PREFIX = "/__fake/img/"
VIDEO_PREFIX = "/__fake/video/"
PUBLIC_ORIGIN = "https://simulator.mj-mcp.invalid"
_SECRET = r"(?:([0-9a-f]{32})/)?"
_IMAGE = re.compile(rf"^{_SECRET}(\d+)\.png$")
_TILE = re.compile(rf"^{_SECRET}(\d+)/0_([0-3])\.png$")
_PREVIEW = re.compile(rf"^{_SECRET}([0-9a-f-]{{36}})_grid_0\.webp$")
_CLIP = re.compile(rf"^{_SECRET}(\d+)/0_([0-3])\.mp4$")
_COVER = re.compile(rf"^{_SECRET}(\d+)\.png$")


def origin(embedded: bool, request_base_url: str) -> str:
    """The origin a new task's image URLs are named under (module docstring)."""
    return PUBLIC_ORIGIN if embedded else request_base_url


def _prefix(secret: str) -> str:
    return f"{PREFIX}{secret}/" if secret else PREFIX


def image_url(base_url: str, image: SimImage) -> str:
    return f"{base_url}{_prefix(image.secret)}{image.image_id}.png"


def tile_url(base_url: str, image: SimImage, k: int) -> str:
    return f"{base_url}{_prefix(image.secret)}{image.image_id}/0_{k}.png"


def preview_url(task: SimTask) -> str:
    return f"{task.base_url}{_prefix(task.secret)}{task.id}_grid_0.webp"


def _video_prefix(secret: str) -> str:
    return f"{VIDEO_PREFIX}{secret}/" if secret else VIDEO_PREFIX


def clip_url(base_url: str, video: SimVideo, k: int) -> str:
    return f"{base_url}{_video_prefix(video.secret)}{video.video_id}/0_{k}.mp4"


def cover_url(base_url: str, video: SimVideo) -> str:
    return f"{base_url}{_video_prefix(video.secret)}{video.video_id}.png"


def _matches(expected: str, given: str | None) -> bool:
    return hmac.compare_digest(expected, given or "")


@dataclass(frozen=True)
class Picture:
    """One of the simulator's own pictures, as a URL names it: a whole image, or one quadrant tile."""

    image: SimImage
    # 1-4 for the tile of that quadrant
    box: int | None = None

    @property
    def size(self) -> Size:
        return half(self.image.raw) if self.box is not None else self.image.raw


def own_picture(url: str, lookup: Callable[[str], SimImage | None]) -> Picture | None:
    """The picture a URL names if it is one this simulator serves (whatever the host), else None."""
    path = urlsplit(url).path
    if not path.startswith(PREFIX):
        return None
    name = path[len(PREFIX) :]
    m = _IMAGE.match(name) or _TILE.match(name)
    image = lookup(m.group(2)) if m else None
    if image is None or m is None or not _matches(image.secret, m.group(1)):
        return None
    return Picture(image, int(m.group(3)) + 1 if m.re is _TILE else None)


def own_image(url: str, lookup: Callable[[str], SimImage | None]) -> SimImage | None:
    """The whole image a URL names if this simulator serves it, else None (a tile is not one)."""
    picture = own_picture(url, lookup)
    return picture.image if picture is not None and picture.box is None else None


@dataclass
class _Found:
    render: Callable[[], bytes]
    media: str = "image/png"


async def _serve(state: SimState, name: str, found: _Found | None) -> Any:
    if found is not None:
        try:
            return Response(await anyio.to_thread.run_sync(found.render), media_type=found.media)
        except KeyError:  # a source image or video vanished in a reset meanwhile
            pass
    with state.lock:
        trace_id = state.ids.uuid()
    return error_response(state, SimError("not_found", f"No image {name[:200]}"), trace_id)


def _size_query(request: Request) -> tuple[int, int] | None:
    try:
        w, h = int(request.query_params["width"]), int(request.query_params["height"])
    except (KeyError, ValueError):
        return None
    return (w, h) if 0 < w <= 8192 and 0 < h <= 8192 else None


async def fake_img(request: Request) -> Any:
    """Raw images, thumbnails (``?width=&height=``), quadrant tiles, and live previews."""
    state: SimState = request.app.state.sim
    state.bind_loop()  # renders may fetch inputs on it (inputs.py)
    name = request.path_params["name"]
    state.log_request(request.method, request.url.path, request.url.query, dict(request.headers), None)
    size = _size_query(request)
    # serve_images off: the CDN forgot them all
    found = _find(state, name, size) if state.config.serve_images else None
    return await _serve(state, name, found)


async def fake_video(request: Request) -> Any:
    """A video's MP4 clips (drawn and encoded when first fetched: clips.py) and its cover."""
    state: SimState = request.app.state.sim
    state.bind_loop()
    name = request.path_params["name"]
    state.log_request(request.method, request.url.path, request.url.query, dict(request.headers), None)
    found = None
    m = _CLIP.match(name) or _COVER.match(name)
    video = state.video(m.group(2)) if m is not None and state.config.serve_images else None
    if video is not None and m is not None and _matches(video.secret, m.group(1)):
        clips, seen = state.clips, video
        if m.re is _CLIP:
            k = int(m.group(3))
            found = _Found(lambda: clips.clip(seen, k), "video/mp4")
        else:
            found = _Found(lambda: clips.cover(seen))
    return await _serve(state, name, found)


def _find(state: SimState, name: str, size: tuple[int, int] | None) -> _Found | None:
    renderer = state.renderer
    if m := _IMAGE.match(name):
        image = state.image(m.group(2))
        if image is not None and _matches(image.secret, m.group(1)):
            recipe = image.recipe
            return _Found(lambda: renderer.encoded(recipe, size))
    elif m := _TILE.match(name):
        image = state.image(m.group(2))
        if image is not None and _matches(image.secret, m.group(1)):
            recipe, box = image.recipe, int(m.group(3)) + 1
            return _Found(lambda: renderer.encoded(recipe, size, box=box))
    elif m := _PREVIEW.match(name):
        with state.lock:
            task = state.task_map.get(m.group(2))
        if task is None or task.recipe is None or not _matches(task.secret, m.group(1)):
            return None
        if task.done and state.config.destroy_previews:
            return None  # upstream destroys previews once the task has finished
        recipe, progress = task.recipe, task.progress
        return _Found(lambda: renderer.preview(recipe, progress, size), "image/webp")
    return None
