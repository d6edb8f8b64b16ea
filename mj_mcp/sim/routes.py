"""The simulator as an ASGI app: its URL space, from the upstream paths to the control API and the
images, and the live state behind it (``app.state.sim``).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from . import cdn, control, endpoints
from .endpoints import ALL_METHODS
from .knobs import SimConfig
from .state import SimState
from .wire import remember_connection


class SimApp(Starlette):
    """Starlette that remembers each request's connection (see wire.py) before routing."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            remember_connection(scope, send)
        await super().__call__(scope, receive, send)


def create_app(config: SimConfig | None = None) -> Starlette:
    """The simulator as an ASGI app; its live state is ``app.state.sim``."""
    routes = [
        Route("/midjourney/imagine", endpoints.imagine, methods=ALL_METHODS),
        Route("/midjourney/edits", endpoints.edits, methods=ALL_METHODS),
        Route("/midjourney/videos", endpoints.videos, methods=ALL_METHODS),
        Route("/midjourney/describe", endpoints.describe, methods=ALL_METHODS),
        Route("/midjourney/seed", endpoints.seed, methods=ALL_METHODS),
        Route("/midjourney/shorten", endpoints.shorten, methods=ALL_METHODS),
        Route("/midjourney/translate", endpoints.translate, methods=ALL_METHODS),
        Route("/midjourney/tasks", endpoints.tasks, methods=ALL_METHODS),
        Route("/midjourney/{rest:path}", endpoints.not_implemented, methods=ALL_METHODS),
        Route("/__fake/config", control.fake_config, methods=ALL_METHODS),
        Route("/__fake/inject", control.fake_inject, methods=ALL_METHODS),
        Route("/__fake/reset", control.fake_reset, methods=ALL_METHODS),
        Route("/__fake/tasks", control.fake_tasks, methods=ALL_METHODS),
        Route("/__fake/requests", control.fake_requests, methods=ALL_METHODS),
        Route("/__fake/callbacks", control.fake_callbacks, methods=ALL_METHODS),
        Route("/__fake/img/{name:path}", cdn.fake_img, methods=["GET", "HEAD"]),
        Route("/__fake/video/{name:path}", cdn.fake_video, methods=["GET", "HEAD"]),
        Route("/{rest:path}", endpoints.not_found, methods=ALL_METHODS),
    ]
    app = SimApp(routes=routes)
    app.state.sim = SimState(config)
    return app
