"""Callback mode as an attacker meets it, through the real server over HTTP against the simulator.

Whoever holds a record's callback URL (a principal billed to their own token can read it from
upstream's task record) can POST anything to it. A callback is a doorbell, not a letter: the body is
never read for its contents; the record advances only from what upstream's own task record says,
looked up with the workspace's token, and nothing a body names is fetched. The route checks the secret
in its path before it reads any body, and reads a body only for a bounded time.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from conftest import TOKEN
from mcp import Client
from support import PATIENCE, Listener, Replica, call, eventually, free_port, imagine_requests, server_env

pytestmark = pytest.mark.anyio
TASKS = "/midjourney/tasks"


@pytest.fixture(scope="module")
def server(sim, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("callbacks")
    port = free_port()
    env = server_env(
        sim, MJ_MCP_PUBLIC_URL=f"http://127.0.0.1:{port}", MJ_MCP_PREVIEW="256", MJ_MCP_CACHE_DIR=str(tmp / "cache")
    )
    replica = Replica(env, tmp / "server.log", port)
    yield replica
    replica.stop()
    assert TOKEN not in replica.log()


@pytest.fixture
def listener():
    inside = Listener()
    yield inside
    inside.close()


async def start(client, sim, prompt: str):
    """A running job once upstream named its task: (its result, the callback URL upstream was given)."""
    _, started, _, _ = await call(client, "imagine", prompt=prompt, wait_seconds=0)

    async def named():
        _, now, _, _ = await call(client, "get_task", ref=started["name"], wait_seconds=0)
        return now if now["task_id"] else None

    started = await eventually(named, "upstream to name the task")
    (sent,) = imagine_requests(sim)
    return started, sent["body"]["callback_url"]


def upstream_record(sim, task_id: str) -> dict:
    reply = httpx.post(
        f"{sim.base_url}{TASKS}",
        json={"action": "retrieve", "id": task_id},
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert "response" in reply.json(), reply.text
    return reply.json()["response"]


def forged_bodies(task_id: str, listener: Listener) -> dict[str, dict]:
    inside = f"{listener.url}/latest/meta-data/forged.png"
    return {
        "finished at an internal address": {
            "success": True,
            "task_id": task_id,
            "progress": 100,
            "image_id": "1111111111111",
            "image_url": inside,
            "raw_image_url": inside,
            "image_width": 8,
            "image_height": 8,
            "actions": ["upscale1", "variation1"],
        },
        "failed": {"success": False, "task_id": task_id, "error": {"code": "forged", "message": "forged"}},
        "another task's image": {
            "success": True,
            "task_id": "0" * 36,
            "progress": 100,
            "image_id": "2",
            "image_url": inside,
            "actions": [],
        },
    }


@pytest.mark.parametrize("forgery", ["finished at an internal address", "failed", "another task's image"])
async def test_a_forged_callback_changes_nothing_and_nothing_it_names_is_fetched(server, fresh_sim, listener, forgery):
    fresh_sim.state.configure(time_scale=0.3)  # a grid takes ~3.3 s: the forgery lands while it runs
    async with Client(server.mcp) as c:
        started, url = await start(c, fresh_sim, "a lighthouse in a storm")
        forged = forged_bodies(started["task_id"], listener)[forgery]
        async with httpx.AsyncClient(timeout=30) as http:
            rings = [await http.post(url, json=forged) for _ in range(10)]  # ten, close together
        assert [r.status_code for r in rings] == [200] * 10  # the secret is right: each one rings
        _, done, text, _ = await call(c, "get_task", ref=started["name"], wait_seconds=PATIENCE)
        assert done["status"] == "completed" and done["error"] is None, text
        assert done["image_url"].startswith(fresh_sim.base_url), done["image_url"]
        own = upstream_record(fresh_sim, started["task_id"])
        assert (done["image_id"], done["image_url"]) == (own["image_id"], own["image_url"])
        assert "preview unavailable" not in text, text  # the thumbnail came from upstream's image
        contents = (await c.read_resource(done["uri"])).contents
        assert contents[0].mime_type == "image/png"
    assert listener.connections == 0 and listener.requests == []
    # Every ring is answered by a look upstream, and rings close together share one.
    rings = len(fresh_sim.state.callbacks) + 10
    assert 1 <= len(fresh_sim.state.requests(TASKS)) < rings


def raw_post(url: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """A POST sent by hand: headers (``content-length`` as given) and ``body``, then nothing more."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    head = f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body)
    return sock


def answer(sock: socket.socket) -> tuple[int, bytes]:
    """(status, everything until the server closed the connection or stopped after one reply)."""
    with sock:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
        return status, data


@pytest.mark.parametrize("declared", [1000, 50_000_000])
async def test_a_wrong_secret_is_refused_before_any_body_is_read(server, fresh_sim, declared):
    """Headers that promise a body (under the cap, and far over it) and no body: the 404 comes at once,
    from the path alone. Reading first would wait for a body that never comes, or answer 413."""
    async with Client(server.mcp) as c:
        _, url = await start(c, fresh_sim, "a quiet pond")
    record_id, secret = url.rsplit("/", 2)[1:]
    for wrong in (f"{url.rsplit('/', 1)[0]}/{'A' * len(secret)}", url.replace(record_id, "0" * len(record_id))):
        status, _ = await anyio.to_thread.run_sync(answer, raw_post(wrong, {"content-length": str(declared)}))
        assert status == 404


async def test_a_callback_body_that_trickles_is_cut(server, fresh_sim):
    """The right secret, then a body that never finishes: the route stops waiting for it (408) and
    closes the connection; nothing rings."""
    async with Client(server.mcp) as c:
        started, url = await start(c, fresh_sim, "a slow snail")
        status, reply = await anyio.to_thread.run_sync(answer, raw_post(url, {"content-length": "1000"}, b'{"succ'))
        assert status == 408 and b"connection: close" in reply.lower(), reply
        _, done, _, _ = await call(c, "get_task", ref=started["name"], wait_seconds=PATIENCE)
    assert done["status"] == "completed"
