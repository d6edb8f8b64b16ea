"""MCP over stdio with a bound on the size of one incoming message.

The SDK's stdio transport reads stdin a line at a time with no limit: a 100 MB line is read whole,
then decoded and validated, copy after copy, taking the process to half a gigabyte. Here each line
is read with a byte cap. A longer message is answered with a JSON-RPC error naming the limit (with
the request's id when it can be read from the message's first or last few kilobytes), then read to
its end in small chunks and dropped, never held; the server goes on serving.

``serve_stdio`` wraps the SDK's own ``stdio_server``, which keeps stdout for the protocol (fd 1
points at stderr while serving), and hands it the bounded lines. Given a stream, the SDK leaves fd 0
alone, so it is claimed here the same way: the protocol is read from a private duplicate and fd 0
points at the null device, so a stray read or a child process cannot eat protocol bytes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

log = logging.getLogger("mj_mcp.stdio")

DEFAULT_MAX_MESSAGE_BYTES = 16 << 20  # the largest mask upload (8 MiB, 11 MiB as base64) fits
TOO_LARGE = -32600  # JSON-RPC "Invalid Request"
_CHUNK = 64 << 10  # an oversize message is skipped this much at a time
_EDGE = 4 << 10  # bytes kept from each end of an oversize message, to find its id


class _Oversize:
    def __init__(self, size: int, head: bytes, tail: bytes) -> None:
        self.size, self.head, self.tail = size, head, tail


class BoundedLines:
    """stdin as an async iterator of text lines of at most ``max_bytes``; an oversize message is
    skipped and reported to ``on_oversize`` (its id or None, its size in bytes)."""

    def __init__(self, raw: BinaryIO, max_bytes: int) -> None:
        self.raw = raw
        self.max_bytes = max_bytes
        self.on_oversize: Callable[[Any, int], Any] | None = None

    def __aiter__(self) -> BoundedLines:
        return self

    async def __anext__(self) -> str:
        while True:
            # abandon_on_cancel: a read blocked on an idle stdin must not hold up the shutdown.
            item = await anyio.to_thread.run_sync(self._read_message, abandon_on_cancel=True)
            if isinstance(item, bytes):
                if not item:
                    raise StopAsyncIteration
                return item.decode("utf-8", "replace")
            request_id = request_id_of(item.head, item.tail)
            log.warning(
                "dropped an incoming message of %d bytes (limit %d, id %r)", item.size, self.max_bytes, request_id
            )
            if self.on_oversize is not None:
                await self.on_oversize(request_id, item.size)

    def _read_message(self) -> bytes | _Oversize:
        """One line (b"" at the end of input), or, past the cap, what is kept of an oversize one."""
        line = self.raw.readline(self.max_bytes + 1)
        if len(line) <= self.max_bytes or line.endswith(b"\n"):
            return line  # a line of exactly max_bytes plus its newline is within the limit
        size, head, tail = len(line), line[:_EDGE], line[-_EDGE:]
        del line
        while True:
            chunk = self.raw.readline(_CHUNK)
            size += len(chunk)
            tail = (tail + chunk)[-_EDGE:]
            if not chunk or chunk.endswith(b"\n"):
                return _Oversize(size - chunk.endswith(b"\n"), head, tail)


async def serve_stdio(
    server: MCPServer, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, *, stdin: BinaryIO | None = None
) -> None:
    """Serve ``server`` over stdin and stdout, refusing any incoming message over ``max_message_bytes``."""
    raw, restore = (stdin, None) if stdin is not None else _claim_stdin()
    lines = BoundedLines(raw, max_message_bytes)
    try:
        async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]

            async def refuse(request_id: Any, size: int) -> None:
                error = types.ErrorData(
                    code=TOO_LARGE,
                    message=(
                        f"message too large: {size:,} bytes; this server accepts at most {max_message_bytes:,} "
                        f"bytes per message"
                    ),
                    data={"max_message_bytes": max_message_bytes, "size": size},
                )
                await write_stream.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)))

            lines.on_oversize = refuse
            # MCPServer.run_stdio_async builds its streams itself and takes none, so the low-level
            # server it wraps is run on ours, exactly as that method does.
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        if restore is not None:
            restore()


def _claim_stdin() -> tuple[BinaryIO, Callable[[], None] | None]:
    """A private duplicate of fd 0 for the protocol, and fd 0 pointed at the null device until
    ``restore``; stdin as it is where fd 0 cannot be duplicated."""
    try:
        if sys.stdin is None or sys.stdin.fileno() != 0:
            raise OSError("stdin is not fd 0")
        try:
            import fcntl  # POSIX: a duplicate above the standard range, closed on exec

            private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
        except ImportError:
            private = os.dup(0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        return sys.stdin.buffer, None

    def restore() -> None:
        try:
            os.dup2(private, 0)
        except OSError:
            pass

    # closefd=False: a worker thread may still block on it after the transport exits.
    return os.fdopen(private, "rb", closefd=False), restore


def request_id_of(head: bytes, tail: bytes) -> int | str | None:
    """The top-level ``id`` of a JSON object seen only by its first and last bytes, when one of the
    two holds it among scalar members (serialisers put ``id`` first, or last as the TypeScript SDK
    does); None otherwise. Only what is certainly top level counts: nested values stop the scan."""
    for found in (_id_forward(head.decode("utf-8", "replace")), _id_backward(tail.decode("utf-8", "replace"))):
        if isinstance(found, str) or (isinstance(found, int) and not isinstance(found, bool)):
            return found
    return None


_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


def _id_forward(text: str) -> Any:
    i = len(text) - len(text.lstrip(_WS))
    if not text.startswith("{", i):
        return None
    i += 1
    while True:
        try:
            i = _skip(text, i)
            key, i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            if text[i] != ":":
                return None
            value, i = _DECODER.raw_decode(text, _skip(text, i + 1))  # a nested value whole in the head is fine
            if key == "id":
                return value
            i = _skip(text, i)
            if text[i] != ",":
                return None
            i += 1
        except (ValueError, IndexError):
            return None


def _id_backward(text: str) -> Any:
    j = len(text.rstrip(_WS)) - 1
    if j < 0 or text[j] != "}":
        return None
    j -= 1
    while True:
        try:
            j = _skip_back(text, j)
            start = _scalar_start(text, j)
            if start is None:
                return None  # a nested value: the rest is not certainly top level
            value = json.loads(text[start : j + 1])
            j = _skip_back(text, start - 1)
            if text[j] != ":":
                return None
            j = _skip_back(text, j - 1)
            key_start = _string_start(text, j)
            if key_start is None:
                return None
            if json.loads(text[key_start : j + 1]) == "id":
                return value
            j = _skip_back(text, key_start - 1)
            if text[j] != ",":
                return None
            j -= 1
        except (ValueError, IndexError):
            return None


def _skip(text: str, i: int) -> int:
    while text[i] in _WS:
        i += 1
    return i


def _skip_back(text: str, j: int) -> int:
    while j >= 0 and text[j] in _WS:
        j -= 1
    if j < 0:
        raise IndexError
    return j


def _scalar_start(text: str, j: int) -> int | None:
    """Where the scalar ending at ``j`` starts (a string, number, true, false or null)."""
    if text[j] == '"':
        return _string_start(text, j)
    i = j
    while i >= 0 and (text[i].isalnum() or text[i] in "+-."):
        i -= 1
    return i + 1 if i < j else None


def _string_start(text: str, j: int) -> int | None:
    """Where the JSON string whose closing quote is at ``j`` opens: the previous quote not escaped,
    that is, preceded by an even number of backslashes."""
    if text[j] != '"':
        return None
    k = text.rfind('"', 0, j)
    while k >= 0:
        slashes = 0
        while k - 1 - slashes >= 0 and text[k - 1 - slashes] == "\\":
            slashes += 1
        if slashes % 2 == 0:
            return k
        k = text.rfind('"', 0, k)
    return None
