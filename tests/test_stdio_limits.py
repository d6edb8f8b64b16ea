"""One incoming stdio message is bounded (issue 9): a 100 MB line is answered with an error naming
the limit, skipped without being held in memory, and the server goes on serving. Through a real
subprocess, ``python -m mj_mcp serve``, spoken to in raw JSON-RPC as a host would."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_transports import RawClient, raw, server_env  # noqa: F401  (raw is a fixture)

from mj_mcp.stdio import DEFAULT_MAX_MESSAGE_BYTES, request_id_of

MB = 1 << 20


def send_huge(client: RawClient, size: int, *, id_last: bool, request_id) -> None:
    """A tools/call whose prompt makes the line ``size`` bytes, written in 1 MB pieces."""
    head = {"method": "tools/call"} if id_last else {"jsonrpc": "2.0", "id": request_id, "method": "tools/call"}
    tail = {"jsonrpc": "2.0", "id": request_id} if id_last else {}
    start = json.dumps(head)[:-1] + ', "params": {"name": "imagine", "arguments": {"prompt": "'
    end = '"}}' + (", " + json.dumps(tail)[1:] if tail else "}")
    filler = size - len(start) - len(end)
    stdin = client.proc.stdin
    stdin.write(start)
    for _ in range(filler // MB):
        stdin.write("a" * MB)
    stdin.write("a" * (filler % MB) + end + "\n")
    stdin.flush()


def answer(client: RawClient, request_id, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = client.inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
        if msg.get("id") == request_id and "method" not in msg:
            return msg


def peak_rss_mb(pid: int) -> float | None:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def test_a_100_mb_message_is_refused_and_the_server_goes_on(raw, fresh_sim):
    client = raw(server_env(fresh_sim))
    client.initialize()
    send_huge(client, 100 * MB, id_last=False, request_id=7)
    error = answer(client, 7)["error"]
    assert error["code"] == -32600 and f"at most {DEFAULT_MAX_MESSAGE_BYTES:,} bytes" in error["message"]
    assert error["data"] == {"max_message_bytes": DEFAULT_MAX_MESSAGE_BYTES, "size": 100 * MB}
    # the TypeScript SDK writes the id last: it is found in the message's tail
    send_huge(client, 20 * MB, id_last=True, request_id="ts-8")
    assert answer(client, "ts-8")["error"]["data"]["size"] == 20 * MB
    # the server goes on: a normal call after the refusals works
    tools, _ = client.request("tools/list")
    assert "imagine" in {t["name"] for t in tools["tools"]}
    result, _ = client.call("imagine", prompt="a small lighthouse")
    assert not result.get("isError"), result
    peak = peak_rss_mb(client.proc.pid)
    if peak is not None:
        assert peak < 250, f"peak RSS {peak:.0f} MB: the message was held in memory"


def test_a_message_at_the_limit_is_read(raw, fresh_sim):
    """Exactly the limit is allowed (the newline does not count): the call is answered by the tool
    (its prompt is too long for the schema), not by the transport."""
    client = raw(server_env(fresh_sim))
    client.initialize()
    send_huge(client, DEFAULT_MAX_MESSAGE_BYTES, id_last=False, request_id=3)
    reply = answer(client, 3)
    assert "result" in reply and reply["result"]["isError"], reply


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"jsonrpc": "2.0", "id": 7, "method": "m", "params": {"id": 1, "x": "y" * 9000}}, 7),
        ({"method": "m", "params": {"x": "y" * 9000, "id": 1}, "jsonrpc": "2.0", "id": 'a"b\\'}, 'a"b\\'),
        ({"method": "m", "params": {"x": "y" * 9000}, "id": 9, "jsonrpc": "2.0"}, 9),
        ({"method": "m", "params": {"x": "y" * 9000, "id": 5}}, None),  # only a nested id: not the request's
        ({"method": "m", "id": True, "params": {"x": "y" * 9000}}, None),
    ],
)
def test_the_request_id_is_read_from_either_end_of_a_message(message, expected):
    data = json.dumps(message).encode()
    assert request_id_of(data[:4096], data[-4096:]) == expected
