"""Test helpers shared by several files: calling tools, counting upstream requests, serving an app,
waiting for a state."""

from __future__ import annotations

import inspect
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

# How long a test waits for a state another task, thread or process brings about. Generous on
# purpose: CI is a busy shared machine, many times slower than an idle one at moments; an idle one
# never waits this long, since every wait ends as soon as its state holds.
PATIENCE = 60.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = PATIENCE, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that; past ``timeout``
    seconds, fail saying what was awaited. A wait on a state, never a sleep that hopes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


async def eventually(condition: Callable[[], Any], what: str, timeout: float = PATIENCE, interval: float = 0.02) -> Any:
    """``wait_until`` for async tests: ``condition`` may be a coroutine function; the event loop
    runs meanwhile."""
    import anyio

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        await anyio.sleep(interval)


async def call(client, tool, **args):
    """Call a tool; return (result, structured content, text, progress events)."""
    events = []

    async def on_progress(progress, total, message):
        events.append((progress, total, message))

    result = await client.call_tool(tool, args, progress_callback=on_progress)
    text = result.content[0].text if result.content else ""
    from conftest import TOKEN

    assert TOKEN not in result.model_dump_json() + repr(events), "the token reached a tool result"
    return result, result.structured_content, text, events


def imagine_requests(sim):
    return sim.state.requests("/midjourney/imagine")


async def submitted(sim, prompt: str, path: str = "/midjourney/imagine") -> None:
    """Wait until ``prompt``'s submit reached the simulator. A call with wait_seconds=0 answers before its
    submit leaves: a test that ends then would leave it to land in the next test's log and counts."""
    await eventually(
        lambda: any((r["body"] or {}).get("prompt") == prompt for r in sim.state.requests(path)),
        f"the submit of {prompt!r} to reach the simulator",
    )


class ThreadedApp:
    """Any ASGI app on a free loopback port, in a thread: a real HTTP peer for the client under test."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        # On exit, a stream a client still holds open (a session's GET stream through a proxy) is cut
        # after a second, not waited for: a graceful shutdown would wait for it forever. The app's
        # lifespan still ends.
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_until(lambda: self.server.started, f"the app on {self.base_url} to start", interval=0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=PATIENCE)


SERVER = [sys.executable, "-m", "mj_mcp", "serve"]


def server_env(sim=None, **extra):
    kept = (
        "PATH",
        "HOME",
        "LANG",
        "SYSTEMROOT",
        "VIRTUAL_ENV",
        "MJ_MCP_CACHE_DIR",
        "MJ_MCP_STORE",
        "MJ_MCP_EXPORT_DIR",
    )
    env = {k: v for k, v in os.environ.items() if k in kept}
    env.update(MJ_MCP_HEARTBEAT_SECONDS="0.05", MJ_MCP_SIM_TIME_SCALE="0.01", PYTHONUNBUFFERED="1")
    if sim is not None:
        from conftest import TOKEN

        env.update(ACEDATACLOUD_API_TOKEN=TOKEN, ACEDATACLOUD_API_BASE_URL=sim.base_url)
    env.update(extra)
    return env


class RawClient:
    """A minimal MCP client speaking newline-delimited JSON-RPC to a subprocess, as any host does."""

    def __init__(self, env):
        self.proc = subprocess.Popen(
            SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, bufsize=1
        )
        self.inbox: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        self.stdout_junk: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
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

    def request(self, method, params=None, timeout=PATIENCE):
        """Send a request; return (result or error, notifications received meanwhile)."""
        self.next_id += 1
        rid = self.next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        notes, deadline = [], time.monotonic() + timeout
        while True:
            try:
                msg = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"no answer to {method} within {timeout:.0f} s; stderr: {''.join(self.stderr)[-2000:]}"
                ) from None
            if msg.get("id") == rid and "method" not in msg:
                return msg.get("result", msg.get("error")), notes
            notes.append(msg)

    def initialize(self, version="2025-06-18", capabilities=None):
        result, _ = self.request(
            "initialize",
            {
                "protocolVersion": version,
                "capabilities": capabilities or {},
                "clientInfo": {"name": "raw-test-client", "version": "1"},
            },
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def call(self, tool, **arguments):
        """Call a tool with a progress token; return the result and the progress notifications for it."""
        token = f"progress-{self.next_id + 1}"
        result, notes = self.request(
            "tools/call", {"name": tool, "arguments": arguments, "_meta": {"progressToken": token}}
        )
        progress = [n["params"] for n in notes if n.get("method") == "notifications/progress"]
        assert all(p["progressToken"] == token for p in progress), progress
        return result, progress

    def close(self):
        """End the session as a host does (stdin closed), then read the server's output to its end:
        what it wrote last is in ``stderr`` and ``stdout_junk`` afterwards."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self.readers:
            reader.join(timeout=PATIENCE)


TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
MODERN = "2026-07-28"


def _replies(response) -> list[dict]:
    """The JSON-RPC messages of an HTTP reply: one JSON body, or the data lines of an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return [
            json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()
        ]
    return [response.json()] if response.content else []


class ModernHttp:
    """Raw 2026-07-28 JSON-RPC over streamable HTTP, as a host would write it: each request a POST standing
    alone, with the protocol envelope in ``_meta`` and the routing headers; by default the request declares
    the tasks extension (``tasks=False``: it declares nothing)."""

    def __init__(self, url: str, *, token: str | None = None, tasks: bool = True, capabilities=None) -> None:
        self.url, self.next_id = url, 0
        self.headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "mcp-protocol-version": MODERN,
        }
        if token is not None:
            self.headers["authorization"] = f"Bearer {token}"
        self.capabilities = dict(capabilities or {})
        if tasks:
            self.capabilities.setdefault("extensions", {})[TASKS_EXTENSION] = {}

    def envelope(self, params=None) -> dict:
        params = dict(params or {})
        params["_meta"] = {
            **params.get("_meta", {}),
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            "io.modelcontextprotocol/clientInfo": {"name": "raw-modern", "version": "1"},
        }
        return params

    def post(self, method, params=None, name=None, timeout=120.0):
        import httpx

        self.next_id += 1
        headers = {**self.headers, "mcp-method": method}
        if name is not None:
            headers["mcp-name"] = name
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": self.envelope(params)}
        return httpx.post(self.url, json=body, headers=headers, timeout=timeout)

    def request(self, method, params=None, name=None, timeout=120.0):
        """(the result, or the error with ``"error"`` in it, and the notifications before it)."""
        messages = _replies(self.post(method, params, name, timeout))
        final = [m for m in messages if "id" in m and "method" not in m]
        assert final, messages
        answer = final[-1]
        notes = [m for m in messages if "method" in m]
        return (answer["result"] if "result" in answer else {"error": answer["error"]}), notes

    def call(self, tool, **arguments):
        return self.request("tools/call", {"name": tool, "arguments": arguments}, name=tool)[0]

    def task(self, method, task_id):
        return self.request(method, {"taskId": task_id}, name=task_id)[0]


class HandshakeHttp:
    """Raw JSON-RPC of the handshake era over streamable HTTP: ``initialize`` (2025-11-25 by default),
    then every request in its session."""

    def __init__(self, url: str, *, token: str | None = None, version: str = "2025-11-25", capabilities=None):
        import httpx

        self.url, self.next_id = url, 0
        self.http = httpx.Client(timeout=120.0)
        self.headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if token is not None:
            self.headers["authorization"] = f"Bearer {token}"
        reply = self.http.post(
            url,
            headers=self.headers,
            json={
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": capabilities or {},
                    "clientInfo": {"name": "raw-handshake", "version": "1"},
                },
            },
        )
        self.initialized = _replies(reply)[-1]["result"]
        self.headers["mcp-session-id"] = reply.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = self.initialized["protocolVersion"]
        self.http.post(url, headers=self.headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

    def request(self, method, params=None, timeout=120.0):
        """(the result, or the error with ``"error"`` in it, and the notifications before it)."""
        self.next_id += 1
        body = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        messages = _replies(self.http.post(self.url, headers=self.headers, json=body, timeout=timeout))
        answer = [m for m in messages if m.get("id") == self.next_id][-1]
        notes = [m for m in messages if "method" in m]
        return (answer["result"] if "result" in answer else {"error": answer["error"]}), notes

    def close(self) -> None:
        self.http.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class RedisServer:
    """A real ``redis-server`` on a free loopback port, its files in ``directory``, nothing saved to disk.
    Tests share one per session; each uses its own database number, flushed when it starts."""

    def __init__(self, directory, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # a failure, never a skip: CI installs it
            import pytest

            pytest.fail(
                "redis-server is missing: run scripts/test-deps (Debian: apt-get install redis-server)", pytrace=False
            )
        self.port = port or free_port()  # a port of its own, or the one a stopped server had (a restart)
        self.log = open(os.path.join(directory, "redis.log"), "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--databases",
                "32",
                "--loglevel",
                "warning",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def flush(self, db: int) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, db=db)
        client.flushdb()
        client.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Replica:
    """One ``mj-mcp serve --transport http`` process on a loopback port (its output kept in a log file).
    ``Replica.start(...)`` starts several at once and waits for all (they import in parallel)."""

    def __init__(self, env: dict, log_path, port: int | None = None, *, wait: bool = True) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mcp = f"{self.url}/mcp"
        self.log_path = log_path
        with open(log_path, "ab") as err:
            self.proc = subprocess.Popen(
                [*SERVER, "--transport", "http", "--port", str(self.port)], env=env, stdout=err, stderr=err
            )  # uvicorn's access log goes to stdout
        if wait:
            self.ready()

    @classmethod
    def start(cls, *specs: tuple) -> list[Replica]:
        """``Replica.start((env, log_path[, port]), ...)``: all spawned, then each waited for."""
        replicas = [cls(*spec, wait=False) for spec in specs]
        for r in replicas:
            r.ready()
        return replicas

    def ready(self) -> None:
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"replica did not start: {self.log()[-2000:]}") from None

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill9(self) -> None:
        import signal

        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=PATIENCE)  # reaped, as an orchestrator would

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=PATIENCE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=PATIENCE)


class Listener:
    """A loopback TCP listener standing in for an internal service: it counts every connection made to
    it (a TLS handshake or a bare connect included) and answers any HTTP request with a small PNG, so a
    fetch that reaches it succeeds instead of failing on its own."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (0, 200, 0)).save(buf, "PNG")
        self.png = buf.getvalue()
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(PATIENCE)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.requests.append(head.split(b"\r\n", 1)[0])
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: %d\r\n"
                    b"connection: close\r\n\r\n" % len(self.png) + self.png
                )
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
