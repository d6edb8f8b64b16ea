"""The server as a host runs it: a subprocess over stdio (a hand-written JSON-RPC client that is not
the Python SDK's, and the SDK client in both eras) and streamable HTTP."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import TOKEN

SERVER = [sys.executable, "-m", "mj_mcp", "serve"]


def server_env(sim=None, **extra):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "VIRTUAL_ENV", "MJ_MCP_CACHE_DIR",
                                                   "MJ_MCP_STORE", "MJ_MCP_EXPORT_DIR")}
    env.update(MJ_MCP_HEARTBEAT_SECONDS="0.05", MJ_MCP_SIM_TIME_SCALE="0.01", PYTHONUNBUFFERED="1")
    if sim is not None:
        env.update(ACEDATACLOUD_API_TOKEN=TOKEN, ACEDATACLOUD_API_BASE_URL=sim.base_url)
    env.update(extra)
    return env


class RawClient:
    """A minimal MCP client speaking newline-delimited JSON-RPC to a subprocess, as any host does."""

    def __init__(self, env):
        self.proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True, bufsize=1)
        self.inbox: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        self.stdout_junk: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.next_id = 0

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.inbox.put(json.loads(line))
            except ValueError:
                self.stdout_junk.append(line)  # anything but JSON-RPC on stdout is a bug

    def send(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def request(self, method, params=None, timeout=30.0):
        """Send a request; return (result or error, notifications received meanwhile)."""
        self.next_id += 1
        rid = self.next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        notes, deadline = [], time.monotonic() + timeout
        while True:
            msg = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            if msg.get("id") == rid and "method" not in msg:
                return msg.get("result", msg.get("error")), notes
            notes.append(msg)

    def initialize(self):
        result, _ = self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                "clientInfo": {"name": "raw-test-client", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def call(self, tool, **arguments):
        """Call a tool with a progress token; return the result and the progress notifications for it."""
        token = f"progress-{self.next_id + 1}"
        result, notes = self.request("tools/call", {"name": tool, "arguments": arguments,
                                                    "_meta": {"progressToken": token}})
        progress = [n["params"] for n in notes if n.get("method") == "notifications/progress"]
        assert all(p["progressToken"] == token for p in progress), progress
        return result, progress

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


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
    assert set(tools) == {"imagine", "apply_action", "blend", "inpaint_region", "get_task", "list_images",
                          "export_image"}
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
    assert result["structuredContent"]["image_url"].startswith("http://127.0.0.1:")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.anyio
async def test_streamable_http_transport(fresh_sim):
    from mcp import Client

    port = free_port()
    proc = subprocess.Popen([*SERVER, "--transport", "http", "--port", str(port)], env=server_env(fresh_sim),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
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
        proc.wait(timeout=10)
