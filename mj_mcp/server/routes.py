"""HTTP routes beside ``/mcp``: the probes an orchestrator asks, and the API's webhook in callback mode.

- ``GET /healthz``: liveness. The process serves HTTP; nothing else is asked, so a slow store or
  upstream never gets a live replica restarted.
- ``GET /readyz``: readiness. 200 when the store answers a read and upstream answers a request (any
  reply below 500), else 503 naming what failed; upstream's answer is kept ``UPSTREAM_CHECK_S``, so
  probes never become a load on it. Both within ``PROBE_TIMEOUT_S``.
- ``POST /callbacks/<record id>/<secret>`` (callback mode, ``MJ_MCP_PUBLIC_URL``): upstream's word that
  a task moved, to any replica. A doorbell, not a letter: whoever holds the URL may POST anything, so
  the body is never believed. Refused with 404, changing nothing and reading no body, unless the record
  exists and the secret's digest is the one it keeps; then the body is read to its end and dropped,
  within ``MAX_CALLBACK_BYTES`` (413) and ``CALLBACK_BODY_S`` (408: a slow sender is let go), and a ring
  is left in the record's inbox, where its one follower, on whichever replica, answers it by looking the
  task up upstream (``jobs/callbacks.py`` says why, and holds the rules). A record already final answers
  200 and stays as it is.

The SDK gives routes outside MCP no lifespan state, so the lifespan hands its ``App`` to ``Routes``;
until it has (starting) and after (stopping), readiness is 503 and callbacks wait for a retry (503).
These routes are not behind MCP authentication: upstream cannot present a user's token, and probes
come from the orchestrator. They reveal nothing: no names, no counts, no URLs. The access log shows a
callback's path without its secret (``MaskCallbackSecrets``): whoever reads logs cannot forge one.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..jobs import CALLBACK_PATH
from .scope import App

PROBE_TIMEOUT_S = 2.0
UPSTREAM_CHECK_S = 5.0
# A reply object is a few KB (upstream's error messages are clipped anyway), sent in milliseconds.
MAX_CALLBACK_BYTES = 256 << 10
CALLBACK_BODY_S = 5.0
_SECRET_IN_PATH = re.compile(re.escape(CALLBACK_PATH) + r"/([^/\s]*)/[^\s\"?]*")


class MaskCallbackSecrets(logging.Filter):
    """Uvicorn's access log (at INFO) writes each request's path: a callback's secret is cut from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_PATH.sub(CALLBACK_PATH + r"/\1/***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


class Routes:
    def __init__(self) -> None:
        self.app: App | None = None  # set by the lifespan while it runs
        self._upstream_seen: tuple[float, bool] = (0.0, False)  # (monotonic time, reachable)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        app = self.app
        if app is None:
            return JSONResponse({"ready": False, "starting_or_stopping": True}, status_code=503)
        checks = {"store": await self._store_answers(app), "upstream": await self._upstream_answers(app)}
        ready = all(checks.values())
        return JSONResponse(
            {"ready": ready, **{k: "ok" if v else "unreachable" for k, v in checks.items()}},
            status_code=200 if ready else 503,
        )

    async def _store_answers(self, app: App) -> bool:
        try:
            with anyio.fail_after(PROBE_TIMEOUT_S):
                await app.studio.store_answers()
            return True
        except Exception:
            return False

    async def _upstream_answers(self, app: App) -> bool:
        seen_at, ok = self._upstream_seen
        if time.monotonic() - seen_at < UPSTREAM_CHECK_S:
            return ok
        ok = await app.studio.upstream_answers(PROBE_TIMEOUT_S)
        self._upstream_seen = (time.monotonic(), ok)
        return ok

    async def callback(self, request: Request) -> Response:
        """A ring of the record's doorbell: the HTTP here (bounds, answers), the acceptance rules in the jobs
        (``jobs/callbacks.py``). Nothing of the body is read before the URL passes them, and what it says is
        never used: the follower looks the task up upstream."""
        record_id, secret = request.path_params["record_id"], request.path_params["secret"]
        app = self.app
        if app is None:
            return _closing(503, "starting or stopping; retry")
        record = await app.studio.callback_record(record_id, secret)
        if record is None:
            return _closing(404, "unknown callback")
        refusal = await _drain(request, MAX_CALLBACK_BYTES, CALLBACK_BODY_S)
        if refusal is not None:
            return refusal
        await app.studio.ring(record)
        return PlainTextResponse("ok")


def _closing(status: int, text: str) -> Response:
    """An answer before the body was read (or all of it): the connection closes after it, so the body's
    unread rest is never taken for a next request, and a slow sender is let go."""
    return PlainTextResponse(text, status_code=status, headers={"connection": "close"})


async def _drain(request: Request, limit: int, seconds: float) -> Response | None:
    """Read the body to its end and drop it (a sender that gets its answer before it has sent its body may
    see a reset, and deliver again); the answer that refuses it when it is over ``limit`` bytes or takes
    longer than ``seconds``, else None."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _closing(413, f"body over {limit} bytes")
    size = 0
    with anyio.move_on_after(seconds):
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return _closing(413, f"body over {limit} bytes")
        except ClientDisconnect:
            return _closing(400, "the body was cut short")
        return None
    return _closing(408, f"the body did not arrive within {seconds:g} s")


def install_routes(server: MCPServer[Any], routes: Routes) -> None:
    """Add the routes to ``server``'s HTTP app; the lifespan sets ``routes.app``."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskCallbackSecrets) for f in access.filters):
        access.addFilter(MaskCallbackSecrets())
    server.custom_route("/healthz", methods=["GET"], include_in_schema=False)(routes.healthz)
    server.custom_route("/readyz", methods=["GET"], include_in_schema=False)(routes.readyz)
    server.custom_route(CALLBACK_PATH + "/{record_id}/{secret}", methods=["POST"], include_in_schema=False)(
        routes.callback
    )
