"""Connection-level behaviour that plain responses cannot express: an ndjson body flushed line by
line, a stream cut mid-body, a TCP reset before any byte, and a request that never gets an answer.

Under uvicorn the ASGI ``send`` callable is a method of the connection's request cycle, which owns
the asyncio transport; the app remembers that cycle in the scope so these tricks can reach the
socket. In-process transports (httpx's ASGITransport) have no socket: a drop there raises
``ConnectionResetError``, which the client sees as a transport error, which is the point.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

CYCLE = "mj_mcp.sim.cycle"

Scope = dict[str, Any]


def remember_connection(scope: Scope, send: Any) -> None:
    scope[CYCLE] = getattr(send, "__self__", None)


def disconnected(scope: Scope) -> bool:
    return bool(getattr(scope.get(CYCLE), "disconnected", False))


async def drop(scope: Scope, *, reset: bool) -> None:
    """Close the client's connection now: with a RST (``reset``), or a FIN after what was written."""
    cycle = scope.get(CYCLE)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionResetError("simulated connection drop")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()  # flushes the buffer first
    for _ in range(200):  # let uvicorn notice, so it does not complain about an unfinished response
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.005)


class Dropped:
    """An ASGI reply that is no reply: the connection is reset before any byte."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await drop(scope, reset=True)


class Hang:
    """Accept the request and never answer, until the client gives up (or the server stops)."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return


@dataclass
class Cut:
    """Marks the end of a stream that breaks: ``partial`` bytes are written, then the connection closes."""

    partial: bytes = b""


class NdjsonStream:
    """A 200 chunked body, one send (and so one flush) per line; a ``Cut`` item breaks it off."""

    def __init__(self, lines: AsyncIterator[bytes | Cut], content_type: str, header_delay: float = 0.0) -> None:
        self.lines = lines
        self.content_type = content_type
        self.header_delay = header_delay

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.header_delay > 0:
            await asyncio.sleep(self.header_delay)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self.content_type.encode()),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        try:
            async for item in self.lines:
                if isinstance(item, Cut):
                    if item.partial:
                        await send({"type": "http.response.body", "body": item.partial, "more_body": True})
                    await drop(scope, reset=False)
                    return
                await send({"type": "http.response.body", "body": item, "more_body": True})
                if disconnected(scope):
                    return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(self.lines, "aclose", None)
            if aclose is not None:
                await aclose()
