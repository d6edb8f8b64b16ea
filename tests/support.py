"""Test helpers shared by several files: calling tools, counting upstream requests, serving an app."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


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


class ThreadedApp:
    """Any ASGI app on a free loopback port, in a thread: a real HTTP peer for the client under test."""

    def __init__(self, app):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=5)
