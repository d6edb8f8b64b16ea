"""Unauthenticated streamable HTTP: the one local user, on loopback only, behind a DNS-rebinding check."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from mcp import Client
from support import PATIENCE, SERVER, free_port, server_env, wait_for_port

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture
def http_server(fresh_sim):
    procs = []

    def start(**extra):
        port = free_port()
        proc = subprocess.Popen(
            [*SERVER, "--transport", "http", "--port", str(port)],
            env=server_env(fresh_sim, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        wait_for_port(port)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=PATIENCE)


@pytest.mark.anyio
async def test_two_clients_on_loopback_are_the_same_local_user(http_server):
    port = http_server()
    url = f"http://127.0.0.1:{port}/mcp"
    async with Client(url) as first:
        r = await first.call_tool("imagine", {"prompt": "a tin robot waving"})
        assert not r.is_error and r.structured_content["name"] == "robot-waving"
    for mode in ("auto", "legacy"):
        async with Client(url, mode=mode) as second:
            listed = await second.call_tool("list_images", {})
            assert [i["name"] for i in listed.structured_content["images"]] == ["robot-waving"]


def test_a_bind_others_can_reach_is_refused_without_authentication(fresh_sim):
    proc = subprocess.run(
        [*SERVER, "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        env=server_env(fresh_sim),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--host 0.0.0.0" in proc.stderr and "loopback" in proc.stderr
    from mj_mcp.server.http import is_loopback

    assert [h for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost") if not is_loopback(h)] == []
    assert [h for h in ("0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "") if is_loopback(h)] == []


def test_the_host_header_must_name_this_server(http_server):
    port = http_server(MJ_MCP_ALLOWED_HOSTS="mj.example.com")
    base = f"http://127.0.0.1:{port}/mcp"
    with httpx.Client(timeout=30) as http:
        assert http.post(base, json=INIT, headers={**ACCEPT, "host": "evil.example"}).status_code == 421
        assert http.post(base, json=INIT, headers={**ACCEPT, "host": "mj.example.com"}).status_code == 200
        assert http.post(base, json=INIT, headers=ACCEPT).status_code == 200  # 127.0.0.1:<port>
        page = http.post(base, json=INIT, headers={**ACCEPT, "origin": "http://evil.example"})
        assert page.status_code == 403  # a browser page elsewhere may not call it
