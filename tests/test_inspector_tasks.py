"""MCP tasks as a client this project did not write runs them: the MCP Inspector's session CLI, `mcpdo`
(Inspector 2.x, pinned in interop/package.json, on Node 22 from interop/node22; its one-shot `--cli`
refuses tasks/*), against `mj-mcp serve --transport http` and over stdio, in both eras.

- 2025-11-25 (`--era legacy`): `tools/call --task` (mcpdo polls the task and fetches its result),
  `tasks/get`, `tasks/list`, `tasks/result`, `tasks/cancel`; and the spend guard's question on the way,
  answered with `elicitation/respond`.
- 2026-07-28 (`--era modern`, where the server decides): a `tools/call` the server turned into a task is
  polled to its result by mcpdo; `tasks/get` and `tasks/cancel` on the extension.

Each test gets a private mcpdo daemon, a home and a catalog of its own; the server's log names each task
it created, which is how a test learns the id of a task mcpdo ran on its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from support import SERVER, HandshakeHttp, ModernHttp, Replica, imagine_requests, server_env
from test_interop import INTEROP, node

MCPDO = INTEROP / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "mcpdo" / "build" / "mcp-bin.js"
CREATED = re.compile(r"task ([0-9a-f]{32}): (\S+) goes on as a task")


class Mcpdo:
    """``mcpdo`` on a private daemon, with its own home and a catalog of ``servers``."""

    def __init__(self, home: Path, servers: dict) -> None:
        if not MCPDO.exists():
            pytest.fail(f"missing {MCPDO}: run scripts/test-deps", pytrace=False)
        home.mkdir(parents=True, exist_ok=True)
        self.catalog = home / "mcp.json"
        self.catalog.write_text(json.dumps({"mcpServers": servers}))
        self.node = node()
        # No OS keychain here: secrets (there are none) go to a file in the home.
        self.env = {"PATH": os.environ["PATH"], "HOME": str(home), "MCP_INSPECTOR_SECRET_STORE": "file"}
        exports = self.run("private").stdout
        self.env.update(re.findall(r"export (\w+)='([^']*)'", exports))
        assert "MCP_INSPECTOR_DAEMON_TOKEN" in self.env, exports

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.node, str(MCPDO), "--catalog", str(self.catalog), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def __call__(self, *args: str) -> dict:
        """One command's JSON answer."""
        done = self.run(*args, "--format", "json")
        try:
            # a failed command says so on stderr
            return json.loads(done.stdout or done.stderr)
        except ValueError:
            raise AssertionError(f"mcpdo {' '.join(args)}: {done.stdout[-1500:]} {done.stderr[-1500:]}") from None

    def close(self) -> None:
        self.run("daemon", "stop", timeout=30)


def created_tasks(server: Replica) -> dict[str, str]:
    """name -> task id, of every task the server's log says it created."""
    return {name: task_id for task_id, name in CREATED.findall(server.log())}


@pytest.fixture(scope="module")
def http_server(sim, tmp_path_factory):
    """An HTTP server on the shared simulator: a job still running after 0.3 s is a task; 4x upscales
    are asked about."""
    base = tmp_path_factory.mktemp("inspector")
    env = server_env(
        sim,
        MJ_MCP_TASK_WAIT_SECONDS="0.3",
        MJ_MCP_CONFIRM="upscale_4x",
        MJ_MCP_PREVIEW="off",
        MJ_MCP_LOG_LEVEL="INFO",
        MJ_MCP_CACHE_DIR=str(base / "cache"),
    )
    [server] = Replica.start((env, base / "server.log"))
    yield server
    server.stop()


@pytest.fixture
def mcpdo(http_server, tmp_path):
    entry = {"type": "streamable-http", "url": http_server.mcp}
    client = Mcpdo(tmp_path / "home", {"legacy": entry, "modern": {**entry, "protocolEra": "modern"}})
    yield client
    client.close()


def test_legacy_era_over_http_task_get_list_result_and_cancel(mcpdo, http_server, fresh_sim):
    fresh_sim.state.configure(time_scale=0.15)
    assert mcpdo("connect", "legacy")["protocolEra"] == "legacy"
    result = mcpdo("@legacy", "tools/call", "imagine", 'prompt:="a red fox in snow"', "--task")
    task_id = result["_meta"]["io.modelcontextprotocol/related-task"]["taskId"]
    assert result["structuredContent"]["name"] == "fox-snow" and result["structuredContent"]["status"] == "completed"
    assert created_tasks(http_server)["fox-snow"] == task_id
    got = mcpdo("@legacy", "tasks/get", task_id)["task"]
    assert got["status"] == "completed" and got["raw"]["ttl"] == 86_400_000
    assert task_id in [t["taskId"] for t in mcpdo("@legacy", "tasks/list")["tasks"]]
    again = mcpdo("@legacy", "tasks/result", task_id)
    assert again["structuredContent"] == result["structuredContent"] and again["content"] == result["content"]
    # a task still working (a grid at real pace takes ~10 s): cancelled for the client, the job goes on
    fresh_sim.state.configure(time_scale=1.0)
    running = HandshakeHttp(http_server.mcp).request(
        "tools/call", {"name": "imagine", "arguments": {"prompt": "a slow glacier"}, "task": {}}
    )[0]["task"]
    cancelled = mcpdo("@legacy", "tasks/cancel", running["taskId"])
    assert cancelled.get("error") is None, cancelled
    got = mcpdo("@legacy", "tasks/get", running["taskId"])["task"]
    assert got["status"] == "cancelled" and "still made" in got["statusMessage"]
    fresh_sim.state.configure(time_scale=0.01)


def test_the_spend_guard_asks_through_mcpdo_before_the_task(mcpdo, http_server, fresh_sim):
    assert mcpdo("connect", "legacy")["protocolEra"] == "legacy"
    mcpdo("@legacy", "tools/call", "imagine", 'prompt:="a barn owl"')
    mcpdo("@legacy", "tools/call", "apply_action", "image:=barn-owl", "action:=upscale3")
    sent = len(imagine_requests(fresh_sim))
    pending = mcpdo("@legacy", "tools/call", "apply_action", "image:=barn-owl.u3", "action:=upscale_4x", "--task")
    question = pending["elicitationPending"]
    assert (
        question["message"] == "Upscale (4x) barn-owl.u3: one upscaled image, billed to your AceDataCloud "
        "account. Go ahead?"
    )
    assert len(imagine_requests(fresh_sim)) == sent
    # no task was accepted: an error, in the tool error's words
    declined = mcpdo("elicitation/respond", question["elicitationId"], "--decline")
    assert "the person declined when asked" in declined["error"]["message"], declined
    assert len(imagine_requests(fresh_sim)) == sent
    pending = mcpdo("@legacy", "tools/call", "apply_action", "image:=barn-owl.u3", "action:=upscale_4x", "--task")
    # the form has no fields: the question is all there is to agree to
    result = mcpdo("elicitation/respond", pending["elicitationPending"]["elicitationId"], "{}")
    assert "structuredContent" in result, str(result)[:2000]
    assert result["structuredContent"]["name"] == "barn-owl.u3.4x"
    assert "io.modelcontextprotocol/related-task" in result["_meta"]
    assert len(imagine_requests(fresh_sim)) == sent + 1


def test_modern_era_over_http_the_server_decides_and_mcpdo_polls(mcpdo, http_server, fresh_sim):
    fresh_sim.state.configure(time_scale=0.15)
    assert mcpdo("connect", "modern")["protocolEra"] == "modern"
    result = mcpdo("@modern", "tools/call", "imagine", 'prompt:="a green heron"')
    assert result["structuredContent"]["name"] == "green-heron" and result["structuredContent"]["status"] == "completed"
    # the answer was a task (the server's log), which mcpdo polled on the extension to this result
    task_id = created_tasks(http_server)["green-heron"]
    got = mcpdo("@modern", "tasks/get", task_id)["task"]
    assert got["status"] == "completed" and got["raw"]["ttlMs"] == 86_400_000
    assert got["raw"]["result"]["structuredContent"] == result["structuredContent"]
    # cancel a working task: acknowledged, and the job goes on to its result
    fresh_sim.state.configure(time_scale=1.0)
    working = ModernHttp(http_server.mcp).call("imagine", prompt="a slow tide")
    assert working["resultType"] == "task"
    assert mcpdo("@modern", "tasks/cancel", working["taskId"])["cancelled"] is True
    got = mcpdo("@modern", "tasks/get", working["taskId"])["task"]
    assert got["status"] in ("working", "completed"), got
    if got["status"] == "working":
        assert "never cancelled upstream" in got["statusMessage"]
    fresh_sim.state.configure(time_scale=0.01)


def test_both_eras_over_stdio(tmp_path, fresh_sim):
    fresh_sim.state.configure(time_scale=0.15)
    log = tmp_path / "stdio.log"
    env = {
        k: v
        for k, v in server_env(
            fresh_sim,
            MJ_MCP_TASK_WAIT_SECONDS="0.3",
            MJ_MCP_PREVIEW="off",
            MJ_MCP_LOG_LEVEL="INFO",
            MJ_MCP_STORE=f"sqlite:///{tmp_path / 'store.db'}",
            MJ_MCP_CACHE_DIR=str(tmp_path / "cache"),
        ).items()
        if k != "PATH"
    }
    # stderr to a file the test reads: the server's log names the tasks it created
    wrapper = tmp_path / "serve.sh"
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(SERVER)} 2>>{log}\n")
    wrapper.chmod(0o755)
    entry = {"command": str(wrapper), "env": env}
    client = Mcpdo(tmp_path / "home", {"legacy": entry, "modern": {**entry, "protocolEra": "modern"}})
    try:
        assert client("connect", "legacy")["protocolEra"] == "legacy"
        result = client("@legacy", "tools/call", "imagine", 'prompt:="a tin robot"', "--task")
        task_id = result["_meta"]["io.modelcontextprotocol/related-task"]["taskId"]
        assert client("@legacy", "tasks/get", task_id)["task"]["status"] == "completed"
        assert task_id in [t["taskId"] for t in client("@legacy", "tasks/list")["tasks"]]
        assert client("@legacy", "tasks/result", task_id)["structuredContent"]["name"] == "tin-robot"
        # an ended task cannot be cancelled in this revision
        refused = client("@legacy", "tasks/cancel", task_id)["error"]["message"]
        assert refused == "Cannot cancel task: already in terminal status 'completed'"
        assert client("connect", "modern")["protocolEra"] == "modern"
        result = client("@modern", "tools/call", "imagine", 'prompt:="a brass robot"')
        assert result["structuredContent"]["status"] == "completed"
        deadline = time.monotonic() + 30
        while "brass-robot" not in dict((n, i) for i, n in CREATED.findall(log.read_text())):
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        modern_id = dict((n, i) for i, n in CREATED.findall(log.read_text()))["brass-robot"]
        got = client("@modern", "tasks/get", modern_id)["task"]
        assert got["status"] == "completed" and got["raw"]["result"]["structuredContent"]["name"] == "brass-robot"
    finally:
        client.close()
