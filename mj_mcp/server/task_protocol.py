"""How each protocol era asks for an MCP task and hears of it; the tasks themselves are ``tasks.py``'s.

2026-07-28, the ``io.modelcontextprotocol/tasks`` extension, through the SDK's extension seam
(``TasksExtension``): declared in ``server/discover``; a ``tools/call`` of a generating tool whose
request declares the extension waits ``MJ_MCP_TASK_WAIT_SECONDS`` and answers a ``CreateTaskResult``
(``resultType: "task"``) if the job is still running, the synchronous result otherwise; never a task to
a request that did not declare it. ``tasks/get``, ``tasks/update`` and ``tasks/cancel`` without the
extension declared are -32021. ``notifications/tasks`` go to the task ids a ``subscriptions/listen``
stream asks for (``TaskListen``).

2025-11-25, the revision's experimental utility, which the SDK types but neither declares nor
dispatches (an extension's tool-call result is checked there as a 2025 ``CallToolResult``, which a
``CreateTaskResult`` is not), so a server middleware does it (``HandshakeTasks``): the ``tasks``
capability in ``initialize``, ``execution.taskSupport: "optional"`` on the generating tools in
``tools/list``, a ``tools/call`` with ``task: {ttl}`` answered by ``CreateTaskResult`` as soon as its job
is stored (a call refused before that, when no task was accepted, answers a JSON-RPC error with the tool
error's words: a client that asked for a task reads a task or an error), a non-generating tool asked for
a task -32601, and the job's progress after that answer on the call's progress token with the related-task
``_meta``, then ``notifications/tasks/status`` when it ends. Its ``tasks/*`` methods are the extension's
bindings, gated by version.

Which tools run as tasks is the operation table's word (``tasks.TASK_TOOLS``: the tools that generate).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import anyio
import anyio.streams.memory
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver.server import require_client_extension
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ListenHandler, ServerEvent, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY, event_matches, event_to_notification
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    CallToolRequestParams,
    GetTaskPayloadRequestParams,
    GetTaskRequestParams,
    PaginatedRequestParams,
    ProgressNotification,
    ProgressNotificationParams,
    RequestParams,
    ServerNotification,
    SubscriptionFilter,
    SubscriptionsAcknowledgedNotification,
    SubscriptionsAcknowledgedNotificationParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    TaskStatusNotification,
    TaskStatusNotificationParams,
)
from pydantic import BaseModel, Field

from ..core.operations import TOOL
from ..errors import InvalidInput
from ..records import Record
from . import tasks as methods
from .protocol import MODERN
from .scope import App
from .tasks import (
    EXTENSION,
    HANDSHAKE,
    IMMEDIATE_RESPONSE,
    MODERN_ERA,
    RELATED_TASK,
    TASK_TOOLS,
    TASKS_REVISION,
    Ask,
    Task,
    Tasks,
    as_task,
    ttl_of,
)

log = logging.getLogger("mj_mcp.tasks")

BOTH = frozenset({TASKS_REVISION, MODERN})
# A listen stream follows at most this many tasks.
MAX_WATCHED = 64
# A watched task is looked at again at least this often (a store that cannot tell another process's
# saves, SQLite, wakes no earlier).
WATCH_BEAT_S = 5.0
# What the 2025-11-25 handshake declares.
CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
EXECUTION = {"taskSupport": "optional"}


class UpdateTaskParams(RequestParams):
    task_id: str
    input_responses: dict[str, Any] = Field(default_factory=dict)


Handler = Callable[[Tasks, ServerRequestContext[App, Any], Any], Awaitable[dict[str, Any]]]


class TasksExtension(Extension):
    """The 2026-07-28 extension (and, through its bindings, the 2025-11-25 methods)."""

    identifier = EXTENSION

    def __init__(self, tasks: Tasks) -> None:
        self._tasks = tasks

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset({MODERN})
        handshake = frozenset({TASKS_REVISION})
        return (
            MethodBinding("tasks/get", GetTaskRequestParams, self._bound(methods.get), BOTH),
            MethodBinding("tasks/cancel", GetTaskRequestParams, self._bound(methods.cancel), BOTH),
            MethodBinding("tasks/update", UpdateTaskParams, self._bound(methods.update), modern),
            MethodBinding("tasks/result", GetTaskPayloadRequestParams, self._bound(methods.result), handshake),
            MethodBinding("tasks/list", PaginatedRequestParams, self._bound(methods.listing), handshake),
        )

    def _bound(self, handler: Handler) -> Callable[[ServerRequestContext[Any, Any], Any], Awaitable[HandlerResult]]:
        async def handle(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
            if ctx.protocol_version >= MODERN:
                # A request that did not declare the extension uses none of it (-32021).
                require_client_extension(ctx, EXTENSION)
            return await handler(self._tasks, ctx, params)

        return handle

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.protocol_version < MODERN or params.name not in TASK_TOOLS or not declares_extension(ctx):
            return await call_next(ctx)
        app: App = ctx.lifespan_context
        with as_task(Ask(MODERN_ERA, ttl_of(None), app.settings.task_wait_s)) as ask:
            result = await call_next(ctx)
        if ask.created is None:
            return result
        log.info("task %s: %s goes on as a task", ask.created.id, ask.created.name)
        return {"resultType": "task", **Task(ask.created, None).wire(MODERN_ERA)}


def declares_extension(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client declared the tasks extension (2026-07-28: per request)."""
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and EXTENSION in capabilities.extensions)


class HandshakeTasks:
    """Server middleware: the 2025-11-25 task utility (see the module docstring)."""

    def __init__(self, tasks: Tasks) -> None:
        self._tasks = tasks

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params
        if (
            ctx.method == "tools/call"
            and ctx.protocol_version == TASKS_REVISION
            and params
            and params.get("task") is not None
        ):
            return await self._call_as_task(ctx, dict(params), call_next)
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        if ctx.method == "initialize" and result.get("protocolVersion") == TASKS_REVISION:
            result.setdefault("capabilities", {})["tasks"] = CAPABILITY
        elif ctx.method == "tools/list" and ctx.protocol_version == TASKS_REVISION:
            result["tools"] = [
                {**tool, "execution": EXECUTION} if tool.get("name") in TASK_TOOLS else tool
                for tool in result.get("tools", [])
            ]
        return result

    async def _call_as_task(
        self, ctx: ServerRequestContext[Any, Any], params: dict[str, Any], call_next: CallNext
    ) -> HandlerResult:
        asked, name = params.pop("task"), params.get("name")
        if isinstance(name, str) and name not in TASK_TOOLS and name in TOOL:
            raise MCPError(code=METHOD_NOT_FOUND, message=f"{name} does not run as a task (it starts no job)")
        ttl = asked.get("ttl") if isinstance(asked, dict) else None
        app: App = ctx.lifespan_context
        with as_task(Ask(HANDSHAKE, ttl_of(ttl if isinstance(ttl, int | float) else None), 0.0)) as ask:
            result = await call_next(dataclasses.replace(ctx, params=params))
        record = ask.created
        if record is None:
            if ask.refused is None:
                return result
            # Refused before any job existed (a local check, a limit, the person said no): no task was
            # accepted, and a client that asked for one reads a task or an error (as the Inspector does).
            code = INVALID_PARAMS if isinstance(ask.refused, InvalidInput) else INTERNAL_ERROR
            raise MCPError(code=code, message=_text_of(result) or str(ask.refused))
        log.info("task %s: %s goes on as a task", record.id, record.name)
        token = ctx.meta.get("progress_token") if ctx.meta else None
        if token is not None:
            app.tasks.start_soon(self._relay, app, ctx.session, token, record)
        told = f"{record.name} is generating as a task; its result follows when the task completes."
        return {"task": Task(record, None).wire(HANDSHAKE), "_meta": {IMMEDIATE_RESPONSE: told}}

    async def _relay(self, app: App, session: ServerSession, token: str | int, record: Record) -> None:
        """The job's progress on the call's token, tied to its task, then its end."""
        related = {RELATED_TASK: {"taskId": record.id}}

        async def report(progress: float, message: str) -> None:
            await session.send_notification(
                ProgressNotification(
                    params=ProgressNotificationParams(
                        progress_token=token,
                        progress=progress,
                        total=100,
                        message=f"{record.name}: {message}",
                        _meta=related,
                    )
                )
            )

        try:
            await app.studio.jobs.watch(record, app.settings.follow_limit_s, report)
            task = await self._tasks.of(app, await app.studio.jobs.current(record))
            status = TaskStatusNotificationParams.model_validate(task.wire(HANDSHAKE))
            await session.send_notification(cast(ServerNotification, TaskStatusNotification(params=status)))
        # The connection went away: nobody is left to tell, and the task is in the store.
        except Exception as exc:
            log.debug("task %s: progress no longer sent: %s", record.name, exc)


def _text_of(result: HandlerResult) -> str:
    content = result.get("content") if isinstance(result, dict) else None
    first = content[0] if isinstance(content, list) and content else {}
    return str(first.get("text", "")) if isinstance(first, dict) else ""


class _Moved(BaseModel):
    """A listen stream's item: this task changed."""

    task_id: str


class _Raw(BaseModel):
    """A notification the SDK's unions do not know (``notifications/tasks``), sent as it is."""

    method: str
    params: dict[str, Any]


class TaskListen(ListenHandler):
    """``subscriptions/listen`` with the extension's ``taskIds``: the SDK's handler for every other event
    kind, and ``notifications/tasks`` (the whole task, as ``tasks/get`` gives it) when a listed task of
    the caller changes, until it ends. A task id that is unknown, expired or another principal's is
    left out of the acknowledgement, as the extension says."""

    def __init__(self, bus: SubscriptionBus, tasks: Tasks) -> None:
        super().__init__(bus)
        self._events = bus
        self._tasks = tasks

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        asked = (params.notifications.model_extra or {}).get("taskIds")
        if asked is None:
            return await super().__call__(ctx, params)
        require_client_extension(ctx, EXTENSION)
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(INVALID_REQUEST, "subscriptions/listen requires a request id")
        app: App = ctx.lifespan_context
        watched = await self._honoured(app, asked)
        requested = params.notifications
        honoured = SubscriptionFilter.model_validate(
            {
                **SubscriptionFilter(
                    tools_list_changed=requested.tools_list_changed or None,
                    prompts_list_changed=requested.prompts_list_changed or None,
                    resources_list_changed=requested.resources_list_changed or None,
                    resource_subscriptions=list(requested.resource_subscriptions or []) or None,
                ).model_dump(by_alias=True, exclude_none=True),
                "taskIds": watched,
            }
        )
        uris = frozenset(honoured.resource_subscriptions or ())
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        send, recv = anyio.create_memory_object_stream[ServerEvent | _Moved](1024)

        def deliver(event: ServerEvent) -> None:
            if event_matches(honoured, uris, event):
                try:
                    send.send_nowait(event)
                except (anyio.ClosedResourceError, anyio.WouldBlock):
                    pass

        unsubscribe = self._events.subscribe(deliver)
        try:
            await ctx.session.send_notification(
                SubscriptionsAcknowledgedNotification(
                    params=SubscriptionsAcknowledgedNotificationParams(notifications=honoured, _meta=meta)
                ),
                related_request_id=subscription_id,
            )
            async with anyio.create_task_group() as tg:
                for task_id in watched:
                    tg.start_soon(self._watch, app, task_id, send.clone())
                async for item in recv:
                    if isinstance(item, _Moved):
                        await self._tell(ctx, app, item.task_id, meta, subscription_id)
                    else:
                        await ctx.session.send_notification(
                            event_to_notification(item, meta), related_request_id=subscription_id
                        )
        finally:
            unsubscribe()
            send.close()
            recv.close()
        return SubscriptionsListenResult(_meta=meta)

    async def _honoured(self, app: App, asked: Any) -> list[str]:
        if not isinstance(asked, list):
            raise MCPError(INVALID_PARAMS, "taskIds must be a list of task ids")
        found = []
        for task_id in asked[:MAX_WATCHED]:
            try:
                found.append((await self._tasks.find(app, str(task_id))).id)
            except MCPError:
                continue
        return found

    async def _watch(self, app: App, task_id: str, send: anyio.streams.memory.MemoryObjectSendStream[Any]) -> None:
        """Say when the task's status or message changes (first: as it stands), until it ends."""
        seen: tuple[str, str] | None = None
        with send:
            async with app.studio.store.changes(task_id) as changed:
                while True:
                    try:
                        task = await self._tasks.find(app, task_id)
                    except MCPError:
                        return
                    now = task.status(MODERN_ERA)
                    if now != seen:
                        seen = now
                        await send.send(_Moved(task_id=task_id))
                    if task.record.final:
                        return
                    await changed(WATCH_BEAT_S)

    async def _tell(
        self, ctx: ServerRequestContext[Any, Any], app: App, task_id: str, meta: dict[str, Any], subscription_id: Any
    ) -> None:
        try:
            task = await self._tasks.find(app, task_id)
        except MCPError:
            return
        shown = task.wire(MODERN_ERA)
        if shown["status"] == "completed":
            shown["result"] = await self._tasks.result(ctx, task)
        note = _Raw(method="notifications/tasks", params={**shown, "_meta": meta})
        await ctx.session.send_notification(cast(ServerNotification, note), related_request_id=subscription_id)
