"""The server as a host runs it: a subprocess over stdio (a hand-written JSON-RPC client that is not
the Python SDK's, and the SDK client in both eras) and streamable HTTP."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import TOKEN
from support import PATIENCE, SERVER, RawClient, free_port, server_env, wait_for_port

from mj_mcp.core.operations import MODEL_TOOLS


@pytest.fixture
def raw(request):
    clients = []

    def start(env):
        c = RawClient(env)
        clients.append(c)
        return c

    yield start
    for c in clients:
        c.close()
        assert c.stdout_junk == [], c.stdout_junk


def test_a_non_sdk_client_over_stdio_runs_a_session(raw, fresh_sim):
    c = raw(server_env(fresh_sim))
    init = c.initialize()
    assert init["protocolVersion"] == "2025-06-18" and init["serverInfo"]["name"] == "mj-mcp"
    tools = {t["name"]: t for t in c.request("tools/list")[0]["tools"]}
    # the model's tools, as the operation table lists them
    assert set(tools) == {t.name for t in MODEL_TOOLS} and "imagine" in tools
    assert "upscale1" in tools["apply_action"]["inputSchema"]["properties"]["action"]["enum"]
    assert tools["get_task"]["annotations"]["readOnlyHint"] is True

    result, progress = c.call("imagine", prompt="Lamborghini speeds inside a volcano")
    assert not result.get("isError"), result
    grid = result["structuredContent"]
    assert grid["name"] == "lamborghini-volcano" and grid["status"] == "completed"
    values = [p["progress"] for p in progress]
    assert len(values) >= 3 and values == sorted(set(values)) and values[-1] == 100
    assert all(p["total"] == 100 and p["message"].startswith("lamborghini-volcano: ") for p in progress)

    result, progress = c.call("apply_action", image="lamborghini-volcano", action="upscale4")
    assert result["structuredContent"]["name"] == "lamborghini-volcano.u4" and progress
    result, _ = c.call("apply_action", image="lamborghini-volcano.u4", action="pan_left")
    assert result["structuredContent"]["name"] == "lamborghini-volcano.u4.left"

    submits = len(fresh_sim.state.requests("/midjourney/imagine"))
    result, progress = c.call("apply_action", image="lamborghini-volcano.u4", action="upscale1")
    assert result["isError"] is True and "not available" in result["content"][0]["text"]
    assert progress == [] and len(fresh_sim.state.requests("/midjourney/imagine")) == submits
    # not simulated when pointed at an upstream with a token
    assert grid["simulated"] is False
    # an upstream 401: a tool error with the upstream code and message; the token shows nowhere
    fresh_sim.state.inject("/midjourney/imagine", "401", times=1)
    result, _ = c.call("imagine", prompt="a locked door")
    text = result["content"][0]["text"]
    assert result["isError"] is True and "invalid_token" in text and "invalid or wrong" in text
    c.close()
    assert TOKEN not in "".join(c.stderr) and TOKEN not in json.dumps(result)


def test_with_no_token_the_embedded_simulator_serves_and_says_so(raw):
    c = raw(server_env())
    init = c.initialize()
    assert "SIMULATOR" in init["instructions"]
    result, progress = c.call("imagine", prompt="a small robot")
    assert not result.get("isError"), result
    assert result["structuredContent"]["simulated"] is True
    assert result["content"][0]["text"].startswith("[simulated]")
    assert result["structuredContent"]["image_url"].startswith("https://simulator.mj-mcp.invalid/__fake/img/")
    c.close()
    assert any("SIMULATED" in line for line in c.stderr)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_client_over_stdio_in_both_eras(fresh_sim, mode):
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=server_env(fresh_sim))
    seen = []

    async def on_progress(p, total, message):
        seen.append(p)

    async with Client(params, mode=mode) as c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        r = await c.call_tool("imagine", {"prompt": "a glass of water"}, progress_callback=on_progress)
        assert not r.is_error and r.structured_content["name"] == "glass-water"
        r = await c.call_tool("apply_action", {"image": "glass-water", "action": "variation1"})
        assert r.structured_content["name"] == "glass-water.v1"
    assert seen and seen == sorted(seen) and seen[-1] == 100


@pytest.mark.anyio
async def test_streamable_http_transport(fresh_sim):
    from mcp import Client

    port = free_port()
    proc = subprocess.Popen(
        [*SERVER, "--transport", "http", "--port", str(port)],
        env=server_env(fresh_sim),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        seen = []

        async def on_progress(p, total, message):
            seen.append(p)

        for mode in ("auto", "legacy"):
            async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as c:
                r = await c.call_tool("imagine", {"prompt": f"a paper lantern {mode}"}, progress_callback=on_progress)
                assert not r.is_error, r.content
                name = r.structured_content["name"]
                r = await c.call_tool("apply_action", {"image": name, "action": "upscale3"})
                assert r.structured_content["name"] == f"{name}.u3"
        assert seen and seen[-1] == 100
    finally:
        proc.terminate()
        proc.wait(timeout=PATIENCE)
