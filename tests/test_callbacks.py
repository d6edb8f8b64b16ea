"""Callback mode as an attacker meets it, through the real server over HTTP against the simulator.

Whoever holds a record's callback URL (a principal billed to their own token can read it from
upstream's task record) can POST anything to it. A callback is a doorbell, not a letter: the body is
never read for its contents; the record advances only from what upstream's own task record says,
looked up with the workspace's token, and nothing a body names is fetched.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from mcp import Client

from conftest import TOKEN
from support import Listener, Replica, call, free_port, imagine_requests, server_env

pytestmark = pytest.mark.anyio
TASKS = "/midjourney/tasks"


@pytest.fixture(scope="module")
def server(sim, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("callbacks")
    port = free_port()
    env = server_env(sim, MJ_MCP_PUBLIC_URL=f"http://127.0.0.1:{port}", MJ_MCP_PREVIEW="256",
                     MJ_MCP_CACHE_DIR=str(tmp / "cache"))
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
    with anyio.fail_after(30):
        while not started["task_id"]:
            await anyio.sleep(0.02)
            _, started, _, _ = await call(client, "get_task", ref=started["name"], wait_seconds=0)
    (sent,) = imagine_requests(sim)
    return started, sent["body"]["callback_url"]


def upstream_record(sim, task_id: str) -> dict:
    reply = httpx.post(f"{sim.base_url}{TASKS}", json={"action": "retrieve", "id": task_id},
                       headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert "response" in reply.json(), reply.text
    return reply.json()["response"]


def forged_bodies(task_id: str, listener: Listener) -> dict[str, dict]:
    inside = f"{listener.url}/latest/meta-data/forged.png"
    return {
        "finished at an internal address": {
            "success": True, "task_id": task_id, "progress": 100, "image_id": "1111111111111",
            "image_url": inside, "raw_image_url": inside, "image_width": 8, "image_height": 8,
            "actions": ["upscale1", "variation1"]},
        "failed": {"success": False, "task_id": task_id, "error": {"code": "forged", "message": "forged"}},
        "another task's image": {"success": True, "task_id": "0" * 36, "progress": 100, "image_id": "2",
                                 "image_url": inside, "actions": []},
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
        _, done, text, _ = await call(c, "get_task", ref=started["name"], wait_seconds=30)
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
