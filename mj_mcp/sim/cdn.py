"""The CDN stand-in: raw images, thumbnails, quadrant tiles and live previews under ``/__fake/img/``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from .bodies import SimError, error_response
from .endpoints import sim_of

_IMAGE = re.compile(r"^(\d+)\.png$")
_TILE = re.compile(r"^(\d+)/0_([0-3])\.png$")
_PREVIEW = re.compile(r"^([0-9a-fA-F-]{36})_grid_\d+\.webp$")


def _size_query(request: Request) -> tuple[int, int] | None:
    try:
        w, h = int(request.query_params["width"]), int(request.query_params["height"])
    except (KeyError, ValueError):
        return None
    return (w, h) if 0 < w <= 8192 and 0 < h <= 8192 else None


async def fake_img(request: Request) -> Any:
    """Raw images, thumbnails (``?width=&height=``), quadrant tiles, and live previews."""
    state = sim_of(request)
    name = request.path_params["name"]
    state.log_request(request.method, request.url.path, request.url.query, dict(request.headers), None)
    size = _size_query(request)
    render: Callable[[], bytes] | None = None
    media = "image/png"
    if not state.config.serve_images:
        pass  # the CDN has forgotten every image
    elif m := _IMAGE.match(name):
        rec = state.image(m.group(1))
        if rec is not None:
            render = lambda: state.renderer.encoded(rec.recipe, size)  # noqa: E731
    elif m := _TILE.match(name):
        rec = state.image(m.group(1))
        if rec is not None:
            render = lambda: state.renderer.encoded(rec.recipe, size, box=int(m.group(2)) + 1)  # noqa: E731
    elif m := _PREVIEW.match(name):
        with state.lock:
            task = state.task_map.get(m.group(1))
        live = task is not None and task.recipe is not None and not (task.done and state.config.destroy_previews)
        if live:
            media = "image/webp"
            render = lambda: state.renderer.preview(task.recipe, task.progress, size)  # noqa: E731
    if render is not None:
        try:
            return Response(await anyio.to_thread.run_sync(render), media_type=media)
        except KeyError:  # a source image vanished in a reset meanwhile
            pass
    with state.lock:
        trace_id = state.ids.uuid()
    return error_response(state, SimError("not_found", f"No image {name}"), trace_id)
