"""HTTP routes beside ``/mcp``: the probes an orchestrator asks, and the API's webhook in callback mode.

- ``GET /healthz``: liveness. The process serves HTTP; nothing else is asked, so a slow store or
  upstream never gets a live replica restarted.
- ``GET /readyz``: readiness. 200 when the store answers a read and upstream answers a request (any
  reply below 500), else 503 naming what failed; upstream's answer is kept ``UPSTREAM_CHECK_S``, so
  probes never become a load on it. Both within ``PROBE_TIMEOUT_S``.
- ``POST /callbacks/<record id>/<secret>`` (callback mode, ``MJ_MCP_PUBLIC_URL``): a task's progress or
  end, from upstream, to any replica. Refused with 404, changing nothing, unless the record exists and
  the secret's digest is the one it keeps; bodies are bounded; a record already final answers 200 and
  stays as it is (upstream may deliver twice). What is heard goes to the record's inbox, where its one
  follower, on whichever replica, collects it (``jobs/callbacks.py`` says why, and holds the rules).

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
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..jobs import CALLBACK_PATH, Delivery
from .scope import App

PROBE_TIMEOUT_S = 2.0
UPSTREAM_CHECK_S = 5.0
MAX_CALLBACK_BYTES = 256 << 10  # a reply object is a few KB; an upstream error message is clipped anyway
_SECRET_IN_PATH = re.compile(re.escape(CALLBACK_PATH) + r"/([^/\s]*)/[^\s\"?]*")


class MaskCallbackSecrets(logging.Filter):
    """Uvicorn's access log (at INFO) writes each request's path: a callback's secret is cut from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET_IN_PATH.sub(CALLBACK_PATH + r"/\1/***", a) if isinstance(a, str) else a
                                for a in record.args)
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
        return JSONResponse({"ready": ready, **{k: "ok" if v else "unreachable" for k, v in checks.items()}},
                            status_code=200 if ready else 503)

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
        """Upstream's POST for a task: HTTP here (bounds, answers), the acceptance rules in the jobs."""
        record_id, secret = request.path_params["record_id"], request.path_params["secret"]
        app = self.app
        if app is None:
            return PlainTextResponse("starting or stopping; retry", status_code=503)
        body = await _bounded_body(request, MAX_CALLBACK_BYTES)
        if body is None:
            return PlainTextResponse(f"body over {MAX_CALLBACK_BYTES} bytes", status_code=413)
        record = await app.studio.callback_record(record_id, secret)
        if record is None:
            return PlainTextResponse("unknown callback", status_code=404)
        status, text = ANSWERS[await app.studio.deliver_callback(record, body)]
        return PlainTextResponse(text, status_code=status)


# What upstream is answered for each fate of its callback.
ANSWERS: dict[Delivery, tuple[int, str]] = {
    # A repeat: the record already holds the end.
    Delivery.ALREADY_FINAL: (200, "ok"),
    Delivery.UNREADABLE: (400, "expected a JSON object"),
    Delivery.OTHER_TASK: (409, "not this callback's task"),
    Delivery.DELIVERED: (200, "ok"),
}


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None past ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def install_routes(server: MCPServer[Any], routes: Routes) -> None:
    """Add the routes to ``server``'s HTTP app; the lifespan sets ``routes.app``."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskCallbackSecrets) for f in access.filters):
        access.addFilter(MaskCallbackSecrets())
    server.custom_route("/healthz", methods=["GET"], include_in_schema=False)(routes.healthz)
    server.custom_route("/readyz", methods=["GET"], include_in_schema=False)(routes.readyz)
    server.custom_route(CALLBACK_PATH + "/{record_id}/{secret}", methods=["POST"],
                        include_in_schema=False)(routes.callback)
