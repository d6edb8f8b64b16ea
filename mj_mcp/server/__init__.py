"""The MCP server: assembles the studio, the tools and the image resources, and owns their lifespan.

The lifespan opens the store, the upstream client and the job followers (and, without an API token,
the embedded simulator, saying so loudly), takes over the running records a previous process left,
and on the way out releases this process's leases so the next start follows those jobs at once.
"""

from __future__ import annotations

import base64
import logging
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import (
    CompleteRequestParams,
    Icon,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import SecretStr

from .._version import __version__
from ..jobs import Jobs
from ..media.cache import ImageCache
from ..media.images import ImageStore
from ..settings import Settings
from ..store import open_store
from ..studio import Studio
from ..upstream import Upstream
from ..upstream.registry import Upstreams
from .auth import authentication
from .bus import ReplicaBus
from .protocol import Connections, ProtocolMiddleware, completer
from .resources import ImageServer, image_resource
from .results import URI_TEMPLATE
from .routes import Routes, install_routes
from .scope import App, scope
from .tools import all_tools
from .view import extension, for_plain_clients

__all__ = ["build_server", "configure_logging"]

log = logging.getLogger("mj_mcp.server")


def _instructions(settings: Settings) -> str:
    text = ("Midjourney image generation (AceDataCloud API). imagine makes a 2x2 grid, quadrants 1-4 from "
            "top-left; apply_action upscales, varies, rerolls, zooms or pans an image; inpaint_region repaints "
            "part of a single image; blend mixes 2-5 images; get_task checks a job; list_images recalls the "
            "workspace's images; export_image saves one to a file. Every result has a short name: refer to images "
            "by it; finished ones come with a thumbnail and are resources at mj://images/<name>.")
    if settings.simulate:
        text += (" NOTE: no API token is configured, so images come from the built-in SIMULATOR (placeholder "
                 "pictures, not Midjourney). Set ACEDATACLOUD_API_TOKEN for real images.")
    return text


def server_icon() -> Icon:
    """The server's icon in its implementation info (``scripts/draw-icon``): inline, so a host shows it
    without fetching anything, and small (64 px, about 1 KB) because every handshake carries it. The tools
    carry none of their own: it would repeat in every tools/list."""
    png = (files("mj_mcp.ui") / "icon.png").read_bytes()
    return Icon(src="data:image/png;base64," + base64.b64encode(png).decode(), mime_type="image/png",
                sizes=["64x64"])


def build_server(settings: Settings) -> MCPServer[Any]:
    """An MCP server for these settings; its lifespan owns the store, the HTTP client and the jobs."""
    guard = authentication(settings)  # None: no authentication, the local user only (SettingsError: a bad file)
    bus = ReplicaBus()  # 2026-07-28 listeners, each hearing of its own workspace only, on every replica
    connections = Connections(bus)
    routes = Routes()  # the HTTP routes beside /mcp (probes, callbacks): they see the lifespan's App

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[App]:
        s, sim = settings, None
        if s.simulate and s.embed_sim:
            from ..sim import SimConfig, SimServer  # only the simulated mode pays for importing it

            token = secrets.token_urlsafe(24)
            sim = SimServer(SimConfig(tokens=[token], time_scale=s.sim_time_scale, embedded=True))
            await anyio.to_thread.run_sync(sim.start)
            s = s.model_copy(update={"base_url": sim.base_url, "api_token": SecretStr(token)})
            log.warning("no ACEDATACLOUD_API_TOKEN: serving SIMULATED images from the embedded simulator at %s",
                        sim.base_url)
            if not s.store_url.startswith(("memory", "sqlite:")):
                log.warning("a shared store with the embedded simulator: its tasks live in this process only, so "
                            "other replicas cannot follow them; give every replica the same upstream")
        store = await open_store(s.store_url)
        upstream = Upstream(s)
        upstreams = Upstreams(upstream, guard.principals.upstream_token if guard else None)
        masking = upstream.redactor.log_filter
        upstream.redactor.install()  # every log record of the process, masked: tracebacks included
        try:
            async with anyio.create_task_group() as tg:
                jobs = Jobs(upstreams, store, s, tg)
                bus.relay_through(store, tg)  # listen events to and from the other replicas (Redis)
                images = ImageStore(upstream, ImageCache(s.cache_dir, s.cache_mb << 20), preview_px=s.preview_px)
                tg.start_soon(jobs.keep_leases)
                routes.app = App(settings=s, studio=Studio(s, store, upstreams, jobs, images),
                                 connections=connections, tasks=tg)
                try:
                    yield routes.app
                finally:
                    routes.app = None  # not ready from here on
                tg.cancel_scope.cancel()  # followers stop; their leases are released for the next start
        finally:
            bus.detach()
            for handler in logging.getLogger().handlers:
                handler.removeFilter(masking)
            await upstream.aclose()
            await store.close()
            if sim is not None:
                await anyio.to_thread.run_sync(sim.stop)

    server = ImageServer("mj-mcp", title="Midjourney (AceDataCloud)", version=__version__, icons=[server_icon()],
                         tools=all_tools(), instructions=_instructions(settings), lifespan=lifespan,
                         log_level=settings.log_level,
                         middleware=[ProtocolMiddleware()], subscriptions=bus,
                         extensions=[extension()],  # the MCP App (view.py)
                         auth=guard.settings if guard else None, token_verifier=guard.verifier if guard else None)
    if guard is not None:
        guard.publish_metadata(server)
    server.resource(URI_TEMPLATE, name="image", mime_type="image/png")(image_resource)
    server.middleware.append(for_plain_clients)
    install_routes(server, routes)
    _serve_spec_methods(server, connections)
    return server


def _serve_spec_methods(server: ImageServer, connections: Connections) -> None:
    """logging/setLevel, resources/(un)subscribe and completion/complete, which MCPServer does not serve.
    It has no public seam for them: the SDK's own advice (``mcp.server.extension.MethodBinding``) is
    the low-level server's ``add_request_handler``, which MCPServer keeps private. The capabilities
    (logging, completions, resources.subscribe) follow from the handlers being there."""
    async def names(request: Any, prefix: str, limit: int) -> list[str]:
        _, ws = scope(Context(request_context=request, mcp_server=server))
        return await ws.names(prefix, limit)

    low = server._lowlevel_server  # noqa: SLF001
    low.add_request_handler("logging/setLevel", SetLevelRequestParams, connections.set_level)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, connections.subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, connections.unsubscribe)
    low.add_request_handler("completion/complete", CompleteRequestParams, completer(names))


def configure_logging(level: str) -> None:
    """Logs go to stderr, never stdout (stdout is the protocol on stdio)."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
