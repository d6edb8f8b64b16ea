"""MCP tasks: a generating job that the host polls instead of a tool call that waits for it.

A task is a job's record, nothing beside it. The record is already durable (stored before its request
leaves, followed by one follower across restarts and replicas, never billed twice); a call that asks for
a task (``Ask``) stores it with a ``Handle`` (its time to live), and the task's id is the record's id
(128 random bits), its principal the record's workspace, its times the record's. So a task created on one
replica resolves on another, after a restart or a ``kill -9``, and a reconnecting client finds it: the
store already guaranteed all of that for the job. Another principal's task id finds nothing, with the
same error as an unknown one (``Workspace.by_id``).

Both protocol eras read the same task, each in its own words (``wire``): 2025-11-25's experimental
utility (``ttl``, ``pollInterval``, ``failed`` for a tool error, ``tasks/result``, ``tasks/list``) and the
``io.modelcontextprotocol/tasks`` extension of 2026-07-28 (``ttlMs``, ``pollIntervalMs``, a tool error is
``completed`` with its ``isError`` result inlined, ``tasks/update``). ``task_protocol.py`` says how each
era asks for one; this module answers the ``tasks/*`` methods of both. A completed task's result is
exactly the tool call's (``tools.record_result``: the thumbnail, the structured record, the
``resource_link`` by negotiated version).

``tasks/cancel`` is acknowledged but never stops the job: upstream refunds nothing, so the picture is
made anyway and kept in the workspace. The request is remembered in the store's counters (the one
shared, expiring, atomic value every store has, so every replica sees it), never written into the
record, whose one writer is its follower; 2025-11-25 then says ``cancelled`` (that revision wants the
status to stay so), 2026-07-28 keeps ``working`` and says in the status message that the job goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, PaginatedRequestParams
from mcp_types.methods import serialize_server_result

from ..core.operations import GENERATING, GET_TASK
from ..errors import MjMcpError
from ..records import Record
from .protocol import MODERN, content_for
from .results import status_text
from .scope import App, call_in

Era = Literal["handshake", "modern"]
HANDSHAKE: Era = "handshake"
MODERN_ERA: Era = "modern"
# The handshake-era revision that has tasks (its experimental utility); earlier ones have none.
TASKS_REVISION = "2025-11-25"
EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
IMMEDIATE_RESPONSE = "io.modelcontextprotocol/model-immediate-response"
# The tools that may run as a task: those that start a paid job (the operation table's effect).
TASK_TOOLS = GENERATING
# What a host is told to wait between polls: upstream is polled every 3 s, progress moves about as often.
POLL_MS = 2000
# A task is answered for a day unless its client asks otherwise, and never for less than an hour (a
# video takes minutes) nor more than a week.
DEFAULT_TTL_S, MIN_TTL_S, MAX_TTL_S = 86400.0, 3600.0, 7 * 86400.0
# tasks/result waits this long at most for a task to end, then answers what the call would have said
# after its wait: the job is still running, and get_task finds it later.
RESULT_WAIT_S = 900.0
# tasks/list pages, over the caller's newest records at most (a workspace may keep a million).
PAGE = 20
SCANNED = 1000
# A task id is a record id: 32 hex digits.
MAX_ID = 64
_CANCEL_KEY = "task-cancel:"


def ttl_of(requested_ms: int | float | None) -> float:
    """The time to live granted for a client's ``ttl`` in milliseconds (None: the default)."""
    if requested_ms is None:
        return DEFAULT_TTL_S
    return min(max(float(requested_ms) / 1000, MIN_TTL_S), MAX_TTL_S)


@dataclass
class Ask:
    """A tools/call that asked for a task, in one era: the handle its job is stored with, how long the
    call waits before answering with the task instead, and what came of it (set by the tool adapter,
    read by the era's protocol layer): the record, once the job was left to run as a task, or why the
    call was refused before any job existed."""

    era: Era
    ttl_s: float
    wait_s: float
    created: Record | None = None
    # Why the call was refused before any job existed (a local check, a limit, the person said no).
    refused: MjMcpError | None = None

    @property
    def always(self) -> bool:
        """2025-11-25 answers every accepted task-augmented call with a task, even a job already done;
        2026-07-28 only one still running after the wait."""
        return self.era == HANDSHAKE


_asking: ContextVar[Ask | None] = ContextVar("mj_mcp_task_ask", default=None)


@contextmanager
def as_task(ask: Ask) -> Iterator[Ask]:
    """While the tool call runs: it asked for a task (``asked``)."""
    token = _asking.set(ask)
    try:
        yield ask
    finally:
        _asking.reset(token)


def asked() -> Ask | None:
    """The task the tools/call being served asked for, if any."""
    return _asking.get()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Task:
    """A task as it stands: its record, and when a cancel was asked (None: never)."""

    record: Record
    cancel_asked_at: float | None

    @property
    def id(self) -> str:
        return self.record.id

    def status(self, era: Era) -> tuple[str, str]:
        """(status, status message) in the era's terms."""
        record, name = self.record, self.record.name
        if self.cancel_asked_at is not None and era == HANDSHAKE:
            return "cancelled", (
                f"Cancelled. A paid job is not cancelled upstream: {name} is still made and kept; "
                f'{GET_TASK}("{name}") finds it.'
            )
        if not record.final:
            message = f"{name}: generating {record.progress:.0f}%"
            if self.cancel_asked_at is not None:
                message += f". Cancel asked, but a paid job is never cancelled upstream: {name} is still made."
            return "working", message
        if record.status == "completed":
            return "completed", f"{name} is ready."
        # A tool error: 2025-11-25 calls it failed; 2026-07-28 keeps failed for JSON-RPC errors only.
        return ("failed" if era == HANDSHAKE else "completed"), status_text(record)

    @property
    def terminal(self) -> bool:
        return self.record.final or self.cancel_asked_at is not None

    def wire(self, era: Era) -> dict[str, Any]:
        """The task's fields in the era's words (the ``Task`` of each revision's schema)."""
        status, message = self.status(era)
        record = self.record
        ttl_ms = int((record.handle.ttl_s if record.handle else DEFAULT_TTL_S) * 1000)
        updated = max(record.updated_at or record.created_at, self.cancel_asked_at or 0.0)
        task: dict[str, Any] = {
            "taskId": record.id,
            "status": status,
            "statusMessage": message,
            "createdAt": iso(record.created_at),
            "lastUpdatedAt": iso(updated),
        }
        if era == MODERN_ERA:
            task.update(ttlMs=ttl_ms, pollIntervalMs=POLL_MS)
        else:
            task.update(ttl=ttl_ms, pollInterval=POLL_MS)
        return task


def not_found() -> MCPError:
    """The one answer for an unknown, expired or another principal's task id (both revisions: -32602)."""
    return MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: Task not found (unknown or expired)")


# The tool adapter's shaping of a record into its result (``tools.record_result``).
Shown = Callable[[Context[App, Any], Record], Awaitable[CallToolResult]]


class Tasks:
    """The tasks of the caller of each request: found, shown, waited on, cancelled, listed; a finished
    one's result shaped by ``shown``, the tool adapter's own shaping."""

    def __init__(self, shown: Shown) -> None:
        self._shown = shown

    async def find(self, app: App, task_id: str) -> Task:
        """The caller's live task ``task_id``; ``not_found`` otherwise."""
        if not (0 < len(task_id) <= MAX_ID and task_id.isalnum()):
            raise not_found()
        ws = call_in(app).workspace
        record = await ws.by_id(task_id)
        if record is None or record.handle is None or time.time() > record.created_at + record.handle.ttl_s:
            raise not_found()
        # The freshest snapshot; a running job nobody follows (its process died) is followed again here.
        record = await app.studio.jobs.get(record, catch_up_s=0)
        return Task(record, await self._cancel_asked_at(app, record))

    async def mine(self, app: App) -> list[Record]:
        """The records of the caller's live tasks, newest first, among its newest ``SCANNED`` records."""
        now = time.time()
        return [
            r
            for r in await call_in(app).workspace.latest(SCANNED)
            if r.handle is not None and now <= r.created_at + r.handle.ttl_s
        ]

    async def of(self, app: App, record: Record) -> Task:
        """The task of one of the caller's records, as it stands (the follower's snapshot, if here)."""
        record = await app.studio.jobs.current(record)
        return Task(record, await self._cancel_asked_at(app, record))

    async def cancel(self, app: App, task: Task) -> Task:
        """Remember that a cancel was asked (the job goes on); the task after it."""
        if task.cancel_asked_at is not None or task.record.final:
            return task
        now = time.time()
        stamped = await app.studio.store.incr(_CANCEL_KEY + task.id, int(now * 1000), _lifetime_left(task.record))
        return Task(task.record, min(stamped / 1000, now))

    async def _cancel_asked_at(self, app: App, record: Record) -> float | None:
        # Read without changing it: the counter holds when the first cancel came, in ms. A counter's
        # lifetime is set when it is first touched, so a read gives it the task's own.
        stamped = await app.studio.store.incr(_CANCEL_KEY + record.id, 0, _lifetime_left(record))
        return min(stamped / 1000, time.time()) if stamped else None

    async def wait(self, app: App, task: Task, seconds: float) -> Task:
        """The task once its job ended, or after ``seconds``."""
        if task.terminal:
            return task
        with anyio.move_on_after(seconds):
            await app.studio.jobs.watch(task.record, seconds, _silent)
        return Task(await app.studio.jobs.current(task.record), task.cancel_asked_at)

    async def result(self, ctx: ServerRequestContext[App, Any], task: Task) -> dict[str, Any]:
        """The tool call's result for the task's record, as the call itself would have answered it, in
        the request's negotiated version."""
        shown = await self._shown(Context(request_context=ctx), task.record)
        dumped = shown.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped = serialize_server_result("tools/call", ctx.protocol_version, dumped)
        dumped["content"] = content_for(ctx.protocol_version, dumped.get("content", []))
        return dumped


def _lifetime_left(record: Record) -> float:
    ttl = record.handle.ttl_s if record.handle else DEFAULT_TTL_S
    return max(record.created_at + ttl - time.time(), 60.0)


async def _silent(progress: float, message: str) -> None:
    return None


# --- the tasks/* methods ---------------------------------------------------------------------------


def era_of(ctx: ServerRequestContext[Any, Any]) -> Era:
    return MODERN_ERA if ctx.protocol_version >= MODERN else HANDSHAKE


def _task_id(params: Any) -> str:
    return str(getattr(params, "task_id", "") or "")


async def get(tasks: Tasks, ctx: ServerRequestContext[App, Any], params: Any) -> dict[str, Any]:
    """``tasks/get``: the task; in 2026-07-28 a completed one carries its result."""
    era = era_of(ctx)
    task = await tasks.find(ctx.lifespan_context, _task_id(params))
    shown = task.wire(era)
    if era == MODERN_ERA and shown["status"] == "completed":
        shown["result"] = await tasks.result(ctx, task)
    return shown


async def result(tasks: Tasks, ctx: ServerRequestContext[App, Any], params: Any) -> dict[str, Any]:
    """``tasks/result`` (2025-11-25): waits for the task to end (at most ``RESULT_WAIT_S``), then the
    tool call's result, tied to its task."""
    app = ctx.lifespan_context
    task = await tasks.wait(app, await tasks.find(app, _task_id(params)), RESULT_WAIT_S)
    answer = await tasks.result(ctx, task)
    answer["_meta"] = {**(answer.get("_meta") or {}), RELATED_TASK: {"taskId": task.id}}
    return answer


async def cancel(tasks: Tasks, ctx: ServerRequestContext[App, Any], params: Any) -> dict[str, Any]:
    """``tasks/cancel``: acknowledged; the paid job goes on. 2025-11-25 answers the cancelled task and
    refuses a task already ended; 2026-07-28 answers an empty acknowledgement."""
    app, era = ctx.lifespan_context, era_of(ctx)
    task = await tasks.find(app, _task_id(params))
    if era == HANDSHAKE and task.terminal:
        status, _ = task.status(era)
        raise MCPError(code=INVALID_PARAMS, message=f"Cannot cancel task: already in terminal status '{status}'")
    task = await tasks.cancel(app, task)
    return task.wire(era) if era == HANDSHAKE else {}


async def update(tasks: Tasks, ctx: ServerRequestContext[App, Any], params: Any) -> dict[str, Any]:
    """``tasks/update`` (2026-07-28): acknowledged; mj-mcp's tasks never wait for input (the spend
    guard asks before the task exists), so every response is for a key not outstanding, and ignored."""
    await tasks.find(ctx.lifespan_context, _task_id(params))
    return {}


async def listing(tasks: Tasks, ctx: ServerRequestContext[App, Any], params: PaginatedRequestParams) -> dict[str, Any]:
    """``tasks/list`` (2025-11-25): the caller's tasks, newest first, ``PAGE`` at a time; the cursor is
    the last one shown (an unknown cursor is -32602)."""
    app = ctx.lifespan_context
    mine = await tasks.mine(app)
    start = 0
    if params.cursor:
        after = _cursor_id(params.cursor)
        ids = [r.id for r in mine]
        if after not in ids:
            raise MCPError(code=INVALID_PARAMS, message="Invalid cursor")
        start = ids.index(after) + 1
    page = mine[start : start + PAGE]
    answer: dict[str, Any] = {"tasks": [(await tasks.of(app, r)).wire(HANDSHAKE) for r in page]}
    if start + PAGE < len(mine):
        answer["nextCursor"] = base64.urlsafe_b64encode(json.dumps({"after": page[-1].id}).encode()).decode()
    return answer


def _cursor_id(cursor: str) -> str | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()[:256]))
    except (ValueError, binascii.Error):
        return None
    after = data.get("after") if isinstance(data, dict) else None
    return after if isinstance(after, str) else None


__all__ = ["EXTENSION", "TASK_TOOLS", "Ask", "Task", "Tasks", "as_task", "asked", "ttl_of"]
