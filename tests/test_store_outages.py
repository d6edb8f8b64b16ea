"""A store that fails, through the real server (``mj-mcp serve`` processes, stdio and HTTP):

- at start, a corrupt, truncated or read-only SQLite file and an unreachable Redis stop the server with
  one line like a settings error (what failed, ``MJ_MCP_STORE``, what to do), exit status 2, no traceback;
- Redis going down while the server runs: every tool answers a tool error saying so, and the server
  serves again once Redis is back;
- Redis restarted empty while a job runs: its follower writes the record back and completes the job,
  with one submit.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from support import PATIENCE, SERVER, RedisServer, Replica, free_port, imagine_requests, server_env

from mj_mcp.records import Record
from mj_mcp.store import SqliteStore

pytestmark = pytest.mark.anyio


# --- a store the server cannot use, at start ---------------------------------------------------------------


async def _a_real_store_file(path) -> None:
    store = await SqliteStore(path).open()
    for i in range(300):
        await store.add(Record(name=f"harbor-{i}", prompt="a calm harbor at dawn " * 20))
    await store.close()


def _read_only(path, request) -> None:
    """``path`` read-only for the server: by its mode, and for root (whom modes do not stop) by the
    immutable attribute, taken off again when the test ends."""
    os.chmod(path, 0o444)
    if os.geteuid() != 0:
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.fail("running as root, a read-only file needs chattr +i (e2fsprogs, CAP_LINUX_IMMUTABLE)", pytrace=False)
    request.addfinalizer(lambda: subprocess.run([chattr, "-i", str(path)], check=False))


# case -> (what the message says the store did, the advice it gives)
BAD_STORES = {
    "corrupt": ("is not an SQLite database", "Move the file aside"),
    "truncated": ("is damaged", "Restore it from a backup"),
    "read-only": ("cannot be written", "writable"),
    "redis-unreachable": ("does not answer", "Check that Redis runs"),
}


@pytest.fixture(params=list(BAD_STORES))
def bad_store(request, tmp_path):
    path = tmp_path / "mj-mcp.db"
    if request.param == "corrupt":
        path.write_bytes(os.urandom(8192))
    elif request.param == "truncated":
        anyio.run(_a_real_store_file, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif request.param == "read-only":
        anyio.run(_a_real_store_file, path)
        _read_only(path, request)
    url = (
        f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
        if request.param.startswith("redis")
        else f"sqlite:///{path}"
    )
    return url, BAD_STORES[request.param]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_store_the_server_cannot_use_stops_the_start_with_one_line_saying_what_to_do(bad_store, transport):
    url, (what, advice) = bad_store
    args = SERVER if transport == "stdio" else [*SERVER, "--transport", "http", "--port", str(free_port())]
    proc = subprocess.run(
        args, env=server_env(None, MJ_MCP_STORE=url), input="", capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr
    assert "Traceback" not in err and "Application startup failed" not in err, err
    assert "MJ_MCP_STORE" in err and what in err and advice in err and "Next:" in err, err
    assert "then start the server again" in err, err
    assert "hunter2-secret" not in err
    if url.startswith("sqlite"):
        assert url.removeprefix("sqlite:///") in err  # which file


# --- Redis gone while the server runs --------------------------------------------------------------------


def _stdio(sim, url: str, log) -> StdioServerParameters:
    """The server over stdio, its stderr in ``log`` (to read it after)."""
    return StdioServerParameters(
        command="sh", args=["-c", f'exec "$@" 2>>"{log}"', "sh", *SERVER], env=server_env(sim, MJ_MCP_STORE=url)
    )


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_redis_down_while_serving_is_a_tool_error_saying_so_and_the_server_serves_again_after(
    fresh_sim, tmp_path, transport
):
    redis = RedisServer(tmp_path)
    log = tmp_path / "server.log"
    replica = None
    try:
        if transport == "stdio":
            target = _stdio(fresh_sim, redis.url(0), log)
        else:
            replica = Replica(server_env(fresh_sim, MJ_MCP_STORE=redis.url(0)), log)
            target = replica.mcp
        async with Client(target) as c:
            r = await c.call_tool("imagine", {"prompt": "a calm harbor at dawn"})
            assert not r.is_error and r.structured_content["status"] == "completed", r.content
            submits = len(imagine_requests(fresh_sim))
            redis.stop()
            for tool, args in [
                ("list_images", {}),
                ("get_task", {"ref": "harbor-dawn"}),
                ("imagine", {"prompt": "a second harbor"}),
            ]:
                with anyio.fail_after(60):
                    r = await c.call_tool(tool, args)
                text = r.content[0].text
                assert r.is_error, (tool, text)
                assert "MJ_MCP_STORE" in text and "does not answer" in text and "Next:" in text, (tool, text)
                assert f"127.0.0.1:{redis.port}" in text and "then call again" in text, (tool, text)
            assert len(imagine_requests(fresh_sim)) == submits  # the store first: nothing was sent
            with pytest.raises(MCPError) as caught:
                await c.read_resource("mj://images/harbor-dawn")
            assert "MJ_MCP_STORE" in str(caught.value) and "does not answer" in str(caught.value), caught.value
            redis = RedisServer(tmp_path, port=redis.port)  # back, empty
            with anyio.fail_after(60):
                r = await c.call_tool("imagine", {"prompt": "a harbor at noon"})
            assert not r.is_error and r.structured_content["status"] == "completed", r.content
            r = await c.call_tool("list_images", {})
            assert not r.is_error and "harbor-noon" in [i["name"] for i in r.structured_content["images"]]
    finally:
        if replica is not None:
            replica.stop()
        redis.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


# --- Redis restarted empty while a job runs --------------------------------------------------------------


async def test_a_job_running_when_redis_restarts_empty_is_written_back_and_completes_with_one_submit(
    fresh_sim, tmp_path
):
    """The follower (a replica over HTTP) finds its lease gone: not taken by another follower, but lost
    with everything else. It takes the lease again, writes the record back, and follows to the end."""
    # A slow job with sparse progress: seconds between upstream's lines, so nothing but the follower's
    # own look at its lease can bring the record back before the job's next step.
    fresh_sim.state.configure(time_scale=1.0, start_delay_s={"fast": 0.2}, step_interval_s={"fast": 3.0})
    redis = RedisServer(tmp_path)
    replica = Replica(
        server_env(fresh_sim, MJ_MCP_STORE=redis.url(0), MJ_MCP_LEASE_SECONDS="1"), tmp_path / "replica.log"
    )
    try:
        async with Client(replica.mcp) as c:
            r = await c.call_tool("imagine", {"prompt": "a lighthouse on a cliff", "wait_seconds": 0})
            running = r.structured_content
            assert running["status"] == "running", r.content
            before = await _wait_for_record(redis.url(0), running["name"], lambda rec: rec.progress > 0)
            redis.stop()
            redis = RedisServer(tmp_path, port=redis.port)  # empty: nothing was saved to disk
            back = await _wait_for_record(redis.url(0), running["name"], lambda rec: True)
            assert back.id == before.id and back.task_id == before.task_id
            done = await _wait_for_record(redis.url(0), running["name"], lambda rec: rec.final)
            assert done.status == "completed" and done.id == before.id and done.image_url, done
            r = await c.call_tool("get_task", {"ref": running["name"]})
            assert not r.is_error and r.structured_content["status"] == "completed", r.content
        assert len(imagine_requests(fresh_sim)) == 1
    finally:
        replica.stop()
        redis.stop()
    assert "writing it back" in replica.log()


async def _wait_for_record(url: str, name: str, ready, seconds: float = PATIENCE) -> Record:
    """The record named ``name`` once ``ready(record)`` holds, read from Redis as any client would."""
    from mj_mcp.store import open_store

    store = await open_store(url)
    try:
        with anyio.fail_after(seconds):
            while True:
                try:
                    record = await store.find("default", name)
                except Exception:
                    record = None
                if record is not None and ready(record):
                    return record
                await anyio.sleep(0.02)
    finally:
        await store.close()
