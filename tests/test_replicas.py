"""Many replicas, one state: `mj-mcp serve --transport http` processes on one real redis-server, against
the simulator over loopback, as a load balancer would spread a team's requests.

- any replica serves any 2026-07-28 request, and a handshake-era session living on the other replica
  gets the spec's 404, initializes again and sees the same images;
- progress of a job one replica streams reaches a get_task wait on the other, through the store;
- `kill -9` of the replica streaming a job: the survivor takes the lease over and completes it by
  polling, with one submit and nothing lost;
- callback mode: upstream POSTs to whichever replica, the follower on the other one completes the job
  without holding a stream, from upstream's own record; forged, oversized and repeated callbacks change
  nothing (tests/test_callbacks.py: what a callback with the right secret can and cannot do);
- images: per-replica caches each fetch what they need; a shared cache volume serves an image after
  its CDN URL expired;
- /healthz and /readyz, with the store or upstream gone.

One pair of replicas serves most of the module; tests that kill or misconfigure one start their own.
"""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest
from conftest import TOKEN
from mcp import Client
from support import (
    PATIENCE,
    HandshakeHttp,
    ModernHttp,
    RedisServer,
    Replica,
    call,
    eventually,
    free_port,
    imagine_requests,
    server_env,
)

from mj_mcp.server.bus import PRESENCE_S
from mj_mcp.store import open_store

pytestmark = pytest.mark.anyio
REDIS_DB = 5  # this module's database on the session's redis-server
TASKS = "/midjourney/tasks"
LEASE_S = "2"  # takeovers within a few seconds, not the default 15


def replica_env(sim, store_url: str, cache, **extra) -> dict:
    # A job still running after 0.3 s is an MCP task for a client that takes them.
    return server_env(
        sim,
        MJ_MCP_STORE=store_url,
        MJ_MCP_LEASE_SECONDS=LEASE_S,
        MJ_MCP_PREVIEW="off",
        MJ_MCP_CACHE_DIR=str(cache),
        MJ_MCP_TASK_WAIT_SECONDS="0.3",
        **extra,
    )


@pytest.fixture(scope="module")
def store_url(redis_server):
    redis_server.flush(REDIS_DB)
    return redis_server.url(REDIS_DB)


@pytest.fixture(scope="module")
def replicas(sim, store_url, tmp_path_factory):
    """Three replicas on one Redis, each with its own image cache (started together: they import in
    parallel); the third is the one the kill test kills."""
    tmp = tmp_path_factory.mktemp("pair")
    started = Replica.start(*[(replica_env(sim, store_url, tmp / f"cache-{i}"), tmp / f"r{i}.log") for i in (1, 2, 3)])
    yield started
    for r in started:
        r.stop()
        assert TOKEN not in r.log()


@pytest.fixture
def pair(replicas):
    return replicas[:2]


@pytest.fixture
def victim(replicas):
    return replicas[2]


@pytest.fixture(scope="module")
def callback_pair(sim, store_url, tmp_path_factory):
    """Two replicas in callback mode, one cache volume: upstream's callbacks go to the second one."""
    tmp = tmp_path_factory.mktemp("callback-pair")
    port = free_port()
    env = replica_env(
        sim, store_url, tmp / "shared-cache", MJ_MCP_PUBLIC_URL=f"http://127.0.0.1:{port}/", MJ_MCP_LOG_LEVEL="INFO"
    )  # the access log too: it must not show callback secrets
    replicas = Replica.start((env, tmp / "r1.log"), (env, tmp / "r2.log", port))
    yield replicas
    for r in replicas:
        r.stop()
        assert TOKEN not in r.log()


async def record_of(store_url: str, name: str):
    store = await open_store(store_url)
    try:
        return await store.find("default", name)
    finally:
        await store.close()


async def record_when(store_url: str, name: str, holds, what: str):
    """The record once ``holds(record)``: a state another process writes, awaited with patience."""

    async def current():
        record = await record_of(store_url, name)
        return record if holds(record) else None

    return await eventually(current, f"{name}: {what}", interval=0.05)


# Many steps, a step every 0.6 s: 35% comes 1 s after the submit and the end 4 s later. A test that
# kills the follower once it streamed 35% has those 4 s to do it, on a busy machine too.
LONG_TAIL = dict(time_scale=0.2, progress_steps=[35, 45, 55, 65, 75, 85, 95, 100])


async def make_until_heard(make, heard, what: str) -> None:
    """Make images with ``make`` until ``heard()``: a replica learns that another one has listeners at
    its next presence beat (bus.PRESENCE_S), and an event relayed before that reaches nobody (a listen
    stream replays nothing). So one image a beat, until a listener elsewhere hears of one."""

    async def one_more():
        await make()
        with anyio.move_on_after(PRESENCE_S):
            while not heard():
                await anyio.sleep(0.02)
        return heard()

    await eventually(one_more, what, interval=0)


async def deliveries_over(sim) -> None:
    """Every callback the simulator owes is delivered and logged (it logs each after the reply)."""
    await eventually(lambda: not sim.state.background, "the simulator's callback deliveries to end")


def _same(a: dict, b: dict) -> bool:
    keys = ("name", "status", "task_id", "image_id", "image_url", "actions")
    return {k: a[k] for k in keys} == {k: b[k] for k in keys}


async def test_any_replica_serves_any_request(pair, fresh_sim):
    r1, r2 = pair
    async with Client(r1.mcp) as one, Client(r2.mcp) as two:
        _, grid, _, _ = await call(one, "imagine", prompt="a red fox in deep snow", wait_seconds=PATIENCE)
        assert grid["status"] == "completed"
        _, seen, _, _ = await call(two, "get_task", ref=grid["name"])
        assert _same(seen, grid)
        _, up, _, _ = await call(two, "apply_action", image=grid["name"], action="upscale2", wait_seconds=PATIENCE)
        assert up["status"] == "completed" and up["parent"] == grid["name"]
        _, listing, _, _ = await call(one, "list_images")
        names = [i["name"] for i in listing["images"]]
        assert names.index(up["name"]) < names.index(grid["name"])
        # each replica's own cache: the first fetches the image the second one made
        contents = (await one.read_resource(up["uri"])).contents
        assert contents[0].mime_type == "image/png"
    assert len(imagine_requests(fresh_sim)) == 2  # one submit per job, whichever replica answered


async def test_a_session_on_the_other_replica_gets_404_and_a_new_session_sees_the_same_images(pair, fresh_sim):
    r1, r2 = pair
    async with Client(r1.mcp, mode="legacy") as one:
        _, grid, _, _ = await call(one, "imagine", prompt="a paper boat on a pond", wait_seconds=PATIENCE)
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2025-11-25",
    }
    async with httpx.AsyncClient(timeout=30) as http:
        init = await http.post(
            r1.mcp,
            headers=headers,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "lb-test", "version": "1"},
                },
            },
        )
        session = init.headers["mcp-session-id"]
        # the load balancer sends the session's next request to the other replica
        lost = await http.post(
            r2.mcp,
            headers={**headers, "mcp-session-id": session},
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        )
        assert lost.status_code == 404, lost.text
        assert lost.json()["error"]["code"] == -32600  # the spec: start a new session with initialize
    async with Client(r2.mcp, mode="legacy") as again:  # a new session, on the other replica
        _, listing, _, _ = await call(again, "list_images")
        assert grid["name"] in [i["name"] for i in listing["images"]]
        _, seen, _, _ = await call(again, "get_task", ref=grid["task_id"])
        assert _same(seen, grid)


class Switch:
    """A reverse proxy to one replica that can be switched to another: a load balancer moving a client
    between replicas mid-session (ASGI, streaming both ways, ``Host`` rewritten as a proxy does)."""

    def __init__(self, target: str) -> None:
        self.target = target

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"host", b"content-length")]
        async with httpx.AsyncClient(timeout=60) as http:
            request = http.build_request(scope["method"], self.target + scope["path"], headers=headers, content=body)
            response = await http.send(request, stream=True)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode(), v.encode())
                        for k, v in response.headers.items()
                        if k.lower() not in ("content-length", "transfer-encoding")
                    ],
                }
            )
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError:
                pass  # the replica ended a stream (a session's GET stream at shutdown): end ours too
            finally:
                await response.aclose()
            await send({"type": "http.response.body", "body": b""})


async def test_what_the_sdk_client_does_when_its_session_lands_on_the_other_replica(pair, fresh_sim):
    """The Python SDK's client gets the 404 as a failed call ("Session not found") and does not
    initialize again by itself: the host (here, a new Client) reconnects, and sees the same images."""
    from mcp.shared.exceptions import MCPError
    from support import ThreadedApp

    r1, r2 = pair
    switch = Switch(r1.url)
    with ThreadedApp(switch) as balancer:
        async with Client(f"{balancer.base_url}/mcp", mode="legacy") as c:
            _, grid, _, _ = await call(c, "imagine", prompt="a snail on a leaf", wait_seconds=PATIENCE)
            switch.target = r2.url
            with pytest.raises(MCPError, match="Session not found"):
                await c.call_tool("list_images", {})
        async with Client(f"{balancer.base_url}/mcp", mode="legacy") as again:
            _, listing, _, _ = await call(again, "list_images")
    assert grid["name"] in [i["name"] for i in listing["images"]]


async def test_progress_streamed_on_one_replica_reaches_a_wait_on_the_other(pair, fresh_sim):
    # A grid takes 4.4 s, 75% at 3.2 s: the wait on the other replica starts before that, however busy.
    fresh_sim.state.configure(time_scale=0.4)
    r1, r2 = pair
    async with Client(r1.mcp) as one, Client(r2.mcp) as two:
        _, started, _, _ = await call(one, "imagine", prompt="a kite over dunes", wait_seconds=0)
        assert started["status"] == "running"
        _, done, _, events = await call(two, "get_task", ref=started["name"], wait_seconds=PATIENCE)
    assert done["status"] == "completed"
    upstream = [m.partition(": ")[2] for _, _, m in events if m and ": generating " in m]
    assert "generating 35%" in upstream and "generating 75%" in upstream, events
    values = [p for p, _, _ in events]
    assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing
    # the second replica only read the store: replica 1 streamed the job to its end, nobody polled
    assert len(imagine_requests(fresh_sim)) == 1
    assert fresh_sim.state.requests(TASKS) == []


async def test_a_listener_on_one_replica_hears_of_images_made_on_the_other(pair, fresh_sim):
    """2026-07-28: the tool call goes to replica 1, the subscriptions/listen stream is held on replica 2."""
    from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

    r1, r2 = pair
    events: list = []
    async with Client(r1.mcp) as one, Client(r2.mcp) as two, two.listen(resources_list_changed=True) as sub:
        async with anyio.create_task_group() as tg:

            async def collect():
                async for event in sub:
                    events.append(event)

            tg.start_soon(collect)

            async def make():
                await call(one, "imagine", prompt="a moth at a window", wait_seconds=PATIENCE)

            await make_until_heard(make, lambda: events, "a listener on replica 2 to hear of an image")
            tg.cancel_scope.cancel()
    assert all(isinstance(e, ResourcesListChanged) for e in events)
    assert not any(isinstance(e, ResourceUpdated) for e in events)  # not asked for: not delivered


def test_a_task_created_on_one_replica_is_polled_to_its_result_on_the_other(pair, fresh_sim):
    """Both eras: the task is the job's record in the shared store, so the other replica answers for it
    (2026-07-28 requests stand alone; a handshake session is opened on the other replica)."""
    fresh_sim.state.configure(time_scale=0.15)  # a grid takes ~1.7 s: past the short wait
    one, other = pair
    created = ModernHttp(one.mcp).call("imagine", prompt="a fern in the rain")
    assert created["resultType"] == "task", created
    legacy = HandshakeHttp(one.mcp).request(
        "tools/call", {"name": "imagine", "task": {}, "arguments": {"prompt": "a moss stone"}}
    )[0]["task"]
    poller = ModernHttp(other.mcp)
    assert poller.task("tasks/get", created["taskId"])["taskId"] == created["taskId"]
    deadline = time.monotonic() + 60
    while (got := poller.task("tasks/get", created["taskId"]))["status"] == "working":
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    assert got["status"] == "completed" and got["result"]["structuredContent"]["name"] == "fern-rain"
    session = HandshakeHttp(other.mcp)
    result, _ = session.request("tasks/result", {"taskId": legacy["taskId"]})
    assert result["structuredContent"]["name"] == "moss-stone" and result["structuredContent"]["status"] == "completed"
    assert legacy["taskId"] in json.dumps(session.request("tasks/list")[0])
    assert len(imagine_requests(fresh_sim)) == 2


async def test_kill_9_of_the_streaming_replica_the_others_complete_its_jobs_with_one_submit_each(
    pair, victim, fresh_sim, store_url
):
    fresh_sim.state.configure(**LONG_TAIL)
    async with Client(victim.mcp) as c:
        _, asked, _, _ = await call(c, "imagine", prompt="a whale under ice", wait_seconds=0)
        _, alone, _, _ = await call(c, "imagine", prompt="a lantern in fog", wait_seconds=0)
    # the victim is streaming it
    record = await record_when(store_url, alone["name"], lambda r: r.progress >= 35, "35% streamed")
    assert record.status == "running" and record.task_id
    victim.kill9()
    assert "finished_at" not in fresh_sim.state.tasks[record.task_id], "the job ended before its follower was killed"
    # a get_task wait on a survivor takes its job over at once (the dead owner's lease is void) ...
    async with Client(pair[0].mcp) as c:
        _, done, _, events = await call(c, "get_task", ref=asked["name"], wait_seconds=PATIENCE)
    assert done["status"] == "completed" and events
    # ... and nobody asks about the other: a survivor's watchdog takes it over and follows it by polling
    record = await record_when(store_url, alone["name"], lambda r: r.status != "running", "taken over and ended")
    assert record.status == "completed" and record.image_id, record
    assert len(imagine_requests(fresh_sim)) == 2  # never a second submit
    assert fresh_sim.state.requests(TASKS)  # followed by polling
    async with Client(pair[1].mcp) as c:
        _, seen, _, _ = await call(c, "get_task", ref=alone["name"])
    assert seen["status"] == "completed" and seen["task_id"] == record.task_id


async def test_callbacks_reach_any_replica_and_the_follower_completes_the_job(callback_pair, fresh_sim, store_url):
    r1, r2 = callback_pair
    async with Client(r1.mcp) as one:
        _, done, _, events = await call(one, "imagine", prompt="a lighthouse at dawn", wait_seconds=PATIENCE)
    assert done["status"] == "completed" and done["image_id"]
    (sent,) = imagine_requests(fresh_sim)
    body = sent["body"] if isinstance(sent["body"], dict) else json.loads(sent["body"])
    assert body["async"] is True and body["callback_url"].startswith(f"{r2.url}/callbacks/")
    # The job can end before upstream has logged the reply to its final callback: read the log after.
    await deliveries_over(fresh_sim)
    delivered = fresh_sim.state.callbacks
    assert delivered and all(d["status"] == 200 for d in delivered)  # received by replica 2
    # No stream, no polling loop: the follower answered the rings by looking upstream, rings close together
    # with one look, and a look that found nothing new once more.
    assert 1 <= len(fresh_sim.state.requests(TASKS)) <= 2 * len(delivered)
    record = await record_of(store_url, done["name"])
    assert record.callback_key and record.callback_key not in body["callback_url"]  # only a digest is kept
    async with httpx.AsyncClient(timeout=PATIENCE) as http:
        # a repeat of the real final callback: accepted, nothing changes
        final = delivered[-1]
        again = await http.post(final["url"], json=final["body"])
        assert again.status_code == 200
        # forged: an unknown id, the real id with a wrong secret, an oversized body, another task's id
        secret = final["url"].rsplit("/", 1)[1]
        forged = {"success": False, "task_id": done["task_id"], "error": {"code": "x", "message": "forged"}}
        for url in (
            f"{r2.url}/callbacks/{'0' * 32}/{secret}",
            f"{r2.url}/callbacks/{record.id}/{'A' * 43}",
            f"{r1.url}/callbacks/{record.id}/{secret[:-1]}",
        ):
            refused = await http.post(url, json=forged)
            assert refused.status_code == 404, url
        big = await http.post(f"{r2.url}/callbacks/{record.id}/{secret}", content=b"{" + b" " * (300 << 10) + b"}")
        assert big.status_code == 413
    after = await record_of(store_url, done["name"])
    assert after == record  # nothing changed
    assert f"/callbacks/{record.id}/***" in r2.log() and secret not in r2.log() + r1.log()


async def test_a_video_and_its_extension_complete_from_upstreams_rings(callback_pair, fresh_sim, store_url):
    """Videos in callback mode, on the shared store: /midjourney/videos is sent async with the callback URL,
    upstream's rings reach the other replica, and the follower completes each job with its four clips."""
    r1, r2 = callback_pair
    async with Client(r1.mcp) as one:
        _, grid, _, _ = await call(one, "imagine", prompt="a kite at dusk", wait_seconds=30)
        _, single, _, _ = await call(one, "apply_action", image=grid["name"], action="upscale4", wait_seconds=30)
        _, video, _, _ = await call(one, "animate", image=single["name"], prompt="the kite dips", wait_seconds=30)
        assert video["status"] == "completed" and len(video["clips"]) == 4, video
        _, longer, text, _ = await call(one, "apply_action", image=video["name"], action="extend2", wait_seconds=30)
        assert longer["status"] == "completed" and longer["parent"] == video["name"], text
    sent = [r["body"] for r in fresh_sim.state.requests("/midjourney/videos")]
    assert [b["action"] for b in sent] == ["generate", "extend"]
    assert all(b["async"] is True and b["callback_url"].startswith(f"{r2.url}/callbacks/") for b in sent)
    assert fresh_sim.state.callbacks and all(d["status"] == 200 for d in fresh_sim.state.callbacks)
    assert (await record_of(store_url, longer["name"])).videos == longer["videos"]


async def test_a_forged_callback_cannot_change_a_running_job(callback_pair, fresh_sim, store_url):
    fresh_sim.state.configure(time_scale=0.15)
    r1, r2 = callback_pair
    async with Client(r1.mcp) as one:
        _, started, _, _ = await call(one, "imagine", prompt="a comet over a city", wait_seconds=0)
        record = await record_of(store_url, started["name"])
        async with httpx.AsyncClient(timeout=PATIENCE) as http:
            for url in (f"{r2.url}/callbacks/{record.id}/{'x' * 43}", f"{r2.url}/callbacks/{record.id[:-1]}0/x"):
                refused = await http.post(
                    url,
                    json={
                        "success": False,
                        "task_id": record.task_id,
                        "error": {"code": "forged", "message": "forged"},
                    },
                )
                assert refused.status_code == 404
        _, done, _, _ = await call(one, "get_task", ref=started["name"], wait_seconds=PATIENCE)
    assert done["status"] == "completed" and done["error"] is None


async def test_in_callback_mode_a_dead_followers_job_is_finished_from_its_inbox(
    callback_pair, sim, fresh_sim, store_url, tmp_path
):
    """The follower dies mid-job; upstream's later callbacks still reach replica 2's route and ring in
    the record's inbox; a survivor takes the lease over, looks upstream, answers the rings, and the job ends."""
    # Progress reaches the record only from upstream's task record.
    fresh_sim.state.configure(**LONG_TAIL, expose_progress_in_task=True)
    r1, r2 = callback_pair
    env = replica_env(sim, store_url, tmp_path / "cache", MJ_MCP_PUBLIC_URL=r2.url)
    victim = Replica(env, tmp_path / "victim.log")
    try:
        async with Client(victim.mcp) as c:
            _, started, _, _ = await call(c, "imagine", prompt="a fox in a lantern", wait_seconds=0)
        record = await record_when(store_url, started["name"], lambda r: r.progress >= 35, "35% recorded")
        assert record.status == "running" and record.callback_key
        victim.kill9()
        ran_on = "finished_at" not in fresh_sim.state.tasks[record.task_id]
        assert ran_on, "the job ended before its follower was killed"
    finally:
        victim.stop()
    record = await record_when(store_url, started["name"], lambda r: r.status != "running", "taken over and ended")
    assert record.status == "completed" and record.image_id
    await deliveries_over(fresh_sim)
    assert len(imagine_requests(fresh_sim)) == 1
    assert all(d["status"] == 200 for d in fresh_sim.state.callbacks)  # replica 2 took every one
    # No polling loop: the survivor's look when it took over, and at most two a ring.
    assert len(fresh_sim.state.requests(TASKS)) <= 1 + 2 * len(fresh_sim.state.callbacks)


async def test_a_shared_cache_volume_serves_an_image_after_its_url_expired(callback_pair, fresh_sim):
    r1, r2 = callback_pair
    async with Client(r1.mcp) as one, Client(r2.mcp) as two:
        _, grid, _, _ = await call(one, "imagine", prompt="a teapot on a shelf", wait_seconds=PATIENCE)
        first = (await one.read_resource(grid["uri"])).contents[0]  # replica 1 downloads it into the volume
        fresh_sim.state.configure(serve_images=False)  # the CDN URL expires
        second = (await two.read_resource(grid["uri"])).contents[0]  # replica 2 reads the shared copy
    assert second.blob == first.blob


async def test_a_per_replica_cache_cannot_serve_an_image_the_other_downloaded_once_the_url_expired(pair, fresh_sim):
    r1, r2 = pair
    async with Client(r1.mcp) as one, Client(r2.mcp) as two:
        _, grid, _, _ = await call(one, "imagine", prompt="a clock in a tree", wait_seconds=PATIENCE)
        await one.read_resource(grid["uri"])  # in replica 1's own cache
        fresh_sim.state.configure(serve_images=False)
        assert (await one.read_resource(grid["uri"])).contents  # replica 1 still has it
        with pytest.raises(Exception, match="download failed"):
            await two.read_resource(grid["uri"])


async def test_health_and_readiness(pair, sim, fresh_sim, tmp_path):
    from conftest import settings_for
    from support import ThreadedApp

    from mj_mcp.server import build_server
    from mj_mcp.server.http import transport_security

    async with httpx.AsyncClient(timeout=PATIENCE) as http:
        for r in pair:
            assert (await http.get(f"{r.url}/healthz")).text == "ok"
            ready = await http.get(f"{r.url}/readyz")
            assert ready.status_code == 200 and ready.json() == {"ready": True, "store": "ok", "upstream": "ok"}
    # a server whose upstream does not answer, then whose Redis goes away: not ready, still alive
    redis = RedisServer(tmp_path)
    settings = settings_for(sim, store=redis.url(0), base_url=f"http://127.0.0.1:{free_port()}")
    server = build_server(settings)
    app = server.streamable_http_app(transport_security=transport_security(settings, 0))
    try:
        with ThreadedApp(app) as served:
            async with httpx.AsyncClient(base_url=served.base_url, timeout=PATIENCE) as http:
                down = await http.get("/readyz")
                assert down.status_code == 503
                assert down.json() == {"ready": False, "store": "ok", "upstream": "unreachable"}
                redis.stop()
                gone = await http.get("/readyz")
                assert gone.status_code == 503 and gone.json()["store"] == "unreachable"
                assert (await http.get("/healthz")).status_code == 200
    finally:
        redis.stop()


def test_callback_mode_needs_http(tmp_path):
    import subprocess

    from support import SERVER

    env = server_env(None, MJ_MCP_PUBLIC_URL="https://mj.example.com")
    run = subprocess.run(SERVER, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "MJ_MCP_PUBLIC_URL" in run.stderr and "--transport http" in run.stderr


async def test_the_embedded_simulator_is_never_sent_a_callback_url(tmp_path):
    """It refuses callback_url: with no token, callback mode stays off instead of failing every job."""
    import os

    from mj_mcp.server import build_server
    from mj_mcp.settings import Settings

    settings = Settings.from_env(
        {
            "MJ_MCP_PUBLIC_URL": "https://mj.example.com",
            "MJ_MCP_STORE": "memory",
            "MJ_MCP_SIM_TIME_SCALE": "0.01",
            "MJ_MCP_PREVIEW": "off",
            "MJ_MCP_CACHE_DIR": str(tmp_path),
            "MJ_MCP_EXPORT_DIR": os.environ["MJ_MCP_EXPORT_DIR"],
        }
    )
    assert settings.embed_sim and settings.public_url
    async with Client(build_server(settings)) as c:
        _, done, _, _ = await call(c, "imagine", prompt="a quiet harbour", wait_seconds=PATIENCE)
    assert done["status"] == "completed"


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_lost_callback_costs_one_look_upstream_after_a_quiet_while(fresh_sim, tmp_path, store):
    """Callbacks that never arrive (nothing listens at the public URL): after 20 poll intervals of
    silence the follower asks upstream, and the job completes; a store that cannot hear other
    processes (SQLite wakes its waiters on a 0.5 s beat) does not make it ask any sooner."""
    from conftest import settings_for

    from mj_mcp.server import build_server

    fresh_sim.state.configure(time_scale=0.12)  # a grid takes ~1.3 s: longer than a few of SQLite's beats
    url = "memory" if store == "memory" else f"sqlite:///{tmp_path / 'store.db'}"
    # Quiet after 4 s: the grid has ended by then (one look finds it done), on a busy machine too.
    settings = settings_for(
        fresh_sim, store=url, public_url=f"http://127.0.0.1:{free_port()}", poll_interval_s=0.2, preview_px=None
    )
    async with Client(build_server(settings)) as c:
        _, done, _, _ = await call(c, "imagine", prompt="a bell in a tower", wait_seconds=PATIENCE)
    assert done["status"] == "completed"
    (sent,) = imagine_requests(fresh_sim)
    assert sent["body"]["callback_url"].startswith(settings.public_url + "/callbacks/")
    tried = fresh_sim.state.callbacks
    assert tried and all(c["status"] is None for c in tried)  # progress and end: refused, nobody there
    assert len(fresh_sim.state.requests(TASKS)) == 1  # one look, once the quiet while was over


def test_a_cache_volume_forgets_what_a_killed_writer_left(tmp_path):
    """On a shared volume a replica killed mid-write leaves its temporary file: the next eviction pass
    (any replica's) deletes it once it is an hour old, and never a write in progress."""
    import os

    from mj_mcp.media.cache import ImageCache

    tmp_path.joinpath(".part-killed").write_bytes(b"half an image")
    os.utime(tmp_path / ".part-killed", (time.time() - 7200, time.time() - 7200))
    tmp_path.joinpath(".part-writing").write_bytes(b"being written")
    ImageCache(tmp_path, 1 << 20).put_sync("img", b"\x89PNG\r\n\x1a\n", "image/png")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".part-writing", "img.png"]


async def test_listen_events_relayed_between_replicas_stay_in_their_workspace(sim, fresh_sim, store_url, tmp_path):
    """Alice makes an image on replica 1; on replica 2 her listen stream hears of it, Bob's does not."""
    import secrets

    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.subscriptions import ResourcesListChanged

    from mj_mcp.principals import token_hash

    alice, bob = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    team = tmp_path / "team.toml"
    team.write_text(
        f'[principals.alice]\ntokens = ["{token_hash(alice)}"]\n\n[principals.bob]\ntokens = ["{token_hash(bob)}"]\n'
    )
    env = replica_env(sim, store_url, tmp_path / "cache", MJ_MCP_AUTH_TOKENS_FILE=str(team))
    one, two = Replica.start((env, tmp_path / "r1.log"), (env, tmp_path / "r2.log"))

    def as_user(token: str, url: str) -> Client:
        return Client(
            streamable_http_client(
                url,
                http_client=httpx2.AsyncClient(
                    headers={"authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300)
                ),
            )
        )

    heard: dict[str, list] = {"alice": [], "bob": []}
    try:
        async with as_user(alice, one.mcp) as maker, as_user(alice, two.mcp) as her, as_user(bob, two.mcp) as him:
            async with her.listen(resources_list_changed=True) as hers, him.listen(resources_list_changed=True) as his:
                async with anyio.create_task_group() as tg:

                    async def collect(who, sub):
                        async for event in sub:
                            heard[who].append(event)

                    tg.start_soon(collect, "alice", hers)
                    tg.start_soon(collect, "bob", his)
                    grids = []

                    async def make():
                        grids.append(
                            (await call(maker, "imagine", prompt="a private garden", wait_seconds=PATIENCE))[1]
                        )

                    await make_until_heard(make, lambda: heard["alice"], "Alice's listener to hear of her image")
                    # An absence, so a window: relayed events reach both streams of replica 2 at once, and
                    # Bob's has had this long to show one. (A busy machine can only make this check weaker.)
                    await anyio.sleep(0.5)
                    tg.cancel_scope.cancel()
    finally:
        for r in (one, two):
            r.stop()
    assert all(grid["status"] == "completed" for grid in grids)
    assert heard["alice"] and all(isinstance(e, ResourcesListChanged) for e in heard["alice"])
    assert heard["bob"] == []
    for token in (alice, bob):
        assert token not in one.log() + two.log()
