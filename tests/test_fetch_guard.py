"""What mj-mcp downloads, through the real server over HTTP: image URLs come from upstream's replies,
and a reply is data, not an order. The simulator sits behind a reverse proxy (the configured API
origin) that can rewrite every image URL in its replies, so upstream names whatever URL a test wants:
plain http elsewhere, names and literals that reach loopback, private and metadata addresses, and
redirects to them. Each is refused with an error that says why, and a loopback listener standing in
for an internal service is never connected to; the API's own origin, redirects within it included,
still serves the image.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest
from conftest import TOKEN
from mcp import Client, MCPError
from starlette.requests import Request
from starlette.responses import Response
from support import PATIENCE, Listener, Replica, ThreadedApp, call, server_env

pytestmark = pytest.mark.anyio

IMAGE_FIELDS = ("image_url", "raw_image_url")
# An edit's four results.
IMAGE_LISTS = ("sub_image_urls",)


class Tampering:
    """A reverse proxy to the simulator (``Host`` kept, so its image URLs name the proxy) that passes
    every reply's image URLs through ``rewrite``; ``/__hop?to=`` answers a redirect to ``to``."""

    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.url = ""
        self.rewrite: Callable[[str], str] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        if request.url.path == "/__hop":
            response = Response(status_code=302, headers={"location": request.query_params["to"]})
        else:
            headers = {k: v for k, v in request.headers.items() if k != "content-length"}
            async with httpx.AsyncClient(timeout=60) as http:
                reply = await http.request(
                    request.method,
                    self.sim_url + request.url.path,
                    params=request.query_params,
                    headers=headers,
                    content=await request.body(),
                )
            ctype = reply.headers.get("content-type", "")
            content = self._rewritten(reply.content) if "json" in ctype and self.rewrite else reply.content
            response = Response(content, status_code=reply.status_code, headers={"content-type": ctype})
        await response(scope, receive, send)

    def _rewritten(self, body: bytes) -> bytes:
        lines = []
        for line in body.split(b"\n"):
            try:
                lines.append(json.dumps(self._walk(json.loads(line))).encode() if line.strip() else line)
            except ValueError:
                lines.append(line)
        return b"\n".join(lines)

    def _walk(self, value):
        if isinstance(value, dict):
            return {
                k: self.rewrite(v)
                if k in IMAGE_FIELDS and isinstance(v, str)
                else [self.rewrite(u) for u in v]
                if k in IMAGE_LISTS and isinstance(v, list)
                else self._walk(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value


@pytest.fixture(scope="module")
def upstream(sim):
    tampering = Tampering(sim.base_url)
    with ThreadedApp(tampering) as app:
        tampering.url = app.base_url
        yield tampering


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fetch-guard")
    env = server_env(
        None,
        ACEDATACLOUD_API_TOKEN=TOKEN,
        ACEDATACLOUD_API_BASE_URL=upstream.url,
        MJ_MCP_CACHE_DIR=str(tmp / "cache"),
        MJ_MCP_PREVIEW="256",
    )
    replica = Replica(env, tmp / "server.log")
    yield replica
    replica.stop()
    assert TOKEN not in replica.log()


@pytest.fixture
def listener():
    inside = Listener()
    yield inside
    inside.close()


@pytest.fixture
def tampering(upstream, fresh_sim):
    _ = fresh_sim
    yield upstream
    upstream.rewrite = None


async def generate(server, prompt: str):
    """A finished image through the server: (its result text, its name)."""
    async with Client(server.mcp) as c:
        result, done, text, _ = await call(c, "imagine", prompt=prompt, wait_seconds=30)
    assert not result.is_error and done["status"] == "completed", text
    return text, done


async def read(server, uri: str) -> bytes | str:
    """The image resource's bytes, or the error reading it answered."""
    async with Client(server.mcp) as c:
        try:
            contents = (await c.read_resource(uri)).contents
        except MCPError as exc:
            return str(exc)
    return base64.b64decode(contents[0].blob)


HOSTILE = {
    "plain http to another origin": ("http://127.0.0.1:{port}/cat.png", "only https"),
    "a name that resolves to loopback": ("https://localhost:{port}/cat.png", "not a public address"),
    "loopback IPv4 carried in IPv6": ("https://[::ffff:127.0.0.1]:{port}/cat.png", "not a public address"),
    "the cloud metadata address": ("https://169.254.169.254/latest/meta-data/cat.png", "not a public address"),
    "a private address": ("https://10.20.30.40/cat.png", "not a public address"),
    "a redirect to plain http": ("{api}/__hop?to=http://127.0.0.1:{port}/cat.png", "only https"),
    "a redirect to a loopback name": ("{api}/__hop?to=https://localhost:{port}/cat.png", "not a public address"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_an_image_url_that_reaches_inside_is_refused(server, tampering, listener, case):
    url, why = HOSTILE[case]
    hostile = url.format(port=listener.port, api=tampering.url)
    tampering.rewrite = lambda _: hostile
    text, done = await generate(server, "a cat on a wall")
    assert done["image_url"] == hostile  # upstream said so; the record keeps what upstream said
    assert "preview unavailable: download failed (refused: " in text and why in text, text
    error = await read(server, done["uri"])
    assert isinstance(error, str) and error.startswith("download failed (refused: ") and why in error, error
    assert listener.connections == 0 and listener.requests == []


@pytest.mark.parametrize("case", ["a private address", "a redirect to a loopback name"])
async def test_an_edits_results_that_reach_inside_are_refused(server, tampering, listener, case):
    url, why = HOSTILE[case]
    hostile = url.format(port=listener.port, api=tampering.url)
    _, grid = await generate(server, "a dog on a step")
    tampering.rewrite = lambda _: hostile
    async with Client(server.mcp) as c:
        result, edit, text, _ = await call(c, "edit_image", image=grid["name"], prompt="a cat", wait_seconds=30)
    assert not result.is_error and edit["sub_images"] == [hostile] * 4, text
    assert "preview unavailable: download failed (refused: " in text and why in text, text
    error = await read(server, f"mj://images/{edit['results'][2]}")
    assert isinstance(error, str) and error.startswith("download failed (refused: ") and why in error, error
    assert listener.connections == 0 and listener.requests == []


async def test_redirects_within_the_api_origin_are_followed_a_few_times(server, tampering):
    """The API's own origin is trusted (loopback here): a redirect chain that stays on it serves the
    image; one longer than three hops is refused."""
    tampering.rewrite = lambda url: f"{tampering.url}/__hop?to={quote(url)}"
    text, done = await generate(server, "a kite over a beach")
    assert "preview unavailable" not in text, text
    served = httpx.get(
        done["raw_image_url"], headers={"authorization": f"Bearer {TOKEN}"}, follow_redirects=True, timeout=PATIENCE
    )
    assert (await read(server, done["uri"])) == served.content and served.content.startswith(b"\x89PNG")

    def four_hops(url: str) -> str:
        for _ in range(4):
            url = f"{tampering.url}/__hop?to={quote(url)}"
        return url

    tampering.rewrite = four_hops
    text, done = await generate(server, "a kite over a lake")
    assert "refused: more than 3 redirects" in text, text
