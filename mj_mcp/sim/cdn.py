"""The CDN stand-in: the URL of every image the simulator serves, the way back from a URL to the
image, and the serving itself (raw images, thumbnails, quadrant tiles, live previews).

URLs look like upstream's in what clients rely on: ``<image_id>.png`` (``?width=&height=`` for the
thumbnail), ``<image_id>/0_<k>.png`` tiles, ``<task_id>_grid_0.webp`` previews. A standalone simulator
names them under the base URL each request came to. An embedded one names them under ``PUBLIC_ORIGIN``,
a fixed https origin that resolves nowhere (``.invalid``, RFC 6761): its port changes with every start
while the server's records keep the URLs, so the server's client fetches that origin from wherever the
simulator listens now (``Upstream(api_alias=...)``). It also puts a random 128-bit part in front of each
path (``<secret>/<image_id>.png``), one per image or task: another local program can reach the port,
and knowing one URL must not give the others.
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
from .records import SimImage, SimTask

if TYPE_CHECKING:
    from .state import SimState

PREFIX = "/__fake/img/"
PUBLIC_ORIGIN = "https://simulator.mj-mcp.invalid"
_SECRET = r"(?:([0-9a-f]{32})/)?"
_IMAGE = re.compile(rf"^{_SECRET}(\d+)\.png$")
_TILE = re.compile(rf"^{_SECRET}(\d+)/0_([0-3])\.png$")
_PREVIEW = re.compile(rf"^{_SECRET}([0-9a-f-]{{36}})_grid_0\.webp$")


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


def _matches(expected: str, given: str | None) -> bool:
    return hmac.compare_digest(expected, given or "")


def own_image(url: str, lookup: Callable[[str], SimImage | None]) -> SimImage | None:
    """The image a URL names if it is one this simulator serves (whatever the host), else None."""
    path = urlsplit(url).path
    if not path.startswith(PREFIX):
        return None
    m = _IMAGE.match(path[len(PREFIX):])
    image = lookup(m.group(2)) if m else None
    return image if image is not None and m is not None and _matches(image.secret, m.group(1)) else None


@dataclass
class _Found:
    render: Callable[[], bytes]
    media: str = "image/png"


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
    found = _find(state, name, size) if state.config.serve_images else None  # else: the CDN forgot them all
    if found is not None:
        try:
            return Response(await anyio.to_thread.run_sync(found.render), media_type=found.media)
        except KeyError:  # a source image vanished in a reset meanwhile
            pass
    with state.lock:
        trace_id = state.ids.uuid()
    return error_response(state, SimError("not_found", f"No image {name[:200]}"), trace_id)


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
