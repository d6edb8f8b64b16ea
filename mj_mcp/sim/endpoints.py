"""The upstream API paths: the task endpoints (``/midjourney/imagine``, ``/edits``, ``/videos``,
``/describe``), ``/midjourney/tasks``, the immediate text answers (``/seed``, ``/shorten``,
``/translate``), and the rest.

Every API request goes the same way: log it, check the method, gather faults (``x-fake-fault``
header, queued injections, global config, ``[[fault:...]]`` prompt tokens), let a fault answer
instead if one should, authenticate, parse the JSON body, then run the endpoint. ``SimError`` from
anywhere becomes an error body in the configured shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from . import bodies, callbacks, cdn, intake, planning, retrieval, texts, timeline
from . import faults as faults_mod
from .bodies import SimError, error_response
from .records import SimTask
from .state import SimState
from .wire import Cut, Dropped, Hang, NdjsonStream

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_FAULT_ERRORS = {
    "401": "invalid_token",
    "403_moderation": "forbidden",
    "403_used_up": "used_up",
    "400_bad_request": "bad_request",
    "400_token_mismatched": "token_mismatched",
    "400_not_implemented": "api_not_implemented",
    "429": "too_many_requests",
    "500": "api_error",
}


@dataclass
class Ctx:
    state: SimState
    body: dict[str, Any]
    token: str
    faults: list[faults_mod.Fault]
    trace_id: str
    generation: int


def sim_of(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def parse_json(raw: bytes) -> tuple[Any, bool]:
    if not raw.strip():
        return None, False
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


def _authenticate(state: SimState, request: Request) -> str:
    """Bearer or bare token (the vendor SDK sends both)."""
    raw = request.headers.get("authorization", "").strip()
    token = raw[7:].strip() if raw.lower().startswith("bearer ") else raw
    cfg = state.config
    if not token:
        raise SimError("invalid_token")
    if token in cfg.tokens_for_other_api:
        raise SimError("token_mismatched")
    if token in cfg.exhausted_tokens:
        raise SimError("used_up")
    if token not in cfg.tokens:
        raise SimError("invalid_token")
    return token


def _collect_faults(state: SimState, request: Request, body: Any) -> list[faults_mod.Fault]:
    try:
        found = faults_mod.parse(request.headers.get("x-fake-fault", ""))
        found += state.take_injected(request.url.path)
        for spec in state.config.faults:
            found += faults_mod.parse(spec)
        if isinstance(body, dict) and isinstance(body.get("prompt"), str) and not state.config.embedded:
            found += faults_mod.strip_prompt(body["prompt"])[1]  # embedded: a prompt is only a prompt
    except faults_mod.FaultSpecError as exc:
        raise SimError("bad_request", f"x-fake-fault: {exc}") from None
    with state.lock:
        return faults_mod.resolve_flaky(found, state.rng)


async def _fault_reply(state: SimState, fs: list[faults_mod.Fault], trace_id: str) -> Any:
    """The reply a fault puts in place of the endpoint's, or None (``slow`` only delays)."""
    slow = faults_mod.first(fs, "slow")
    if slow is not None:
        await anyio.sleep(slow.num("delay", 1.0))
    for f in fs:
        if f.name in _FAULT_ERRORS:
            retry_after = f.params.get("retry_after") if f.name == "429" else None
            headers = {"retry-after": retry_after} if retry_after else None
            err = SimError(_FAULT_ERRORS[f.name], f.params.get("message"), headers=headers)
            return error_response(state, err, trace_id)
        if f.name == "504":
            await anyio.sleep(f.num("delay", 0.0))
            return error_response(state, SimError("timeout", f.params.get("message")), trace_id)
        if f.name in ("502_html", "503_html"):
            status = int(f.name[:3])
            title = f"{status} {'Bad Gateway' if status == 502 else 'Service Temporarily Unavailable'}"
            return HTMLResponse(_GATEWAY_PAGE.format(title), status_code=status)
        if f.name == "hang":
            return Hang()
        if f.name == "reset" and not f.flag("after_submit"):
            return Dropped()
        if f.name == "empty_body":
            return Response(b"", status_code=200, media_type="application/json")
        if f.name == "bad_json":
            return Response(b'{"task_id": "abc"', status_code=200, media_type="application/json")
        if f.name == "error_string":
            return JSONResponse({"error": f.text("message", "some string")}, status_code=f.int("status", 500))
    return None


Handler = Callable[[Request, Ctx], Awaitable[Any]]


def api(handler: Handler) -> Callable[[Request], Awaitable[Any]]:
    """Wrap an upstream endpoint in the common request path (module docstring)."""

    async def endpoint(request: Request) -> Any:
        state = sim_of(request)
        state.bind_loop()
        generation = state.generation
        body, ok, trace_id = await _received(state, request)
        try:
            if request.method != "POST":
                raise SimError("method_not_allowed", headers={"allow": "POST"})
            fs = _collect_faults(state, request, body)
            reply = await _fault_reply(state, fs, trace_id)
            if reply is not None:
                return reply
            token = _authenticate(state, request)
            if not ok or not isinstance(body, dict):
                raise SimError("bad_request")
            return await handler(request, Ctx(state, body, token, fs, trace_id, generation))
        except SimError as err:
            return error_response(state, err, trace_id)

    return endpoint


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


Submit = Callable[[SimState, intake.Submission], SimTask]
# Characters of a prompt to shorten or a text to translate.
MAX_TEXT = 20_000


async def _task_reply(
    request: Request, ctx: Ctx, submit: Submit, *, streams: bool = True, answers_at_once: bool = True
) -> Any:
    """Submit a task, then answer as the request asks: at once with the task id (``async`` or a
    ``callback_url``), an ndjson stream, or the final object once the task ends (docs/upstream.md,
    "Three ways to answer"). ``streams`` and ``answers_at_once`` off: synchronous only (describe)."""
    state, body, cfg = ctx.state, ctx.body, ctx.state.config
    wants_ndjson = streams and "application/x-ndjson" in request.headers.get("accept", "").lower()
    is_async = answers_at_once and (_truthy(body.get("async")) or bool(body.get("callback_url")))
    reply = "async" if is_async else "stream" if wants_ndjson else "sync"
    if ctx.generation != state.generation:  # a slow fault outlived a reset: start nothing in the new state
        raise SimError("api_error", "The simulator was reset while this request waited.")
    task = submit(
        state,
        intake.Submission(
            body=body,
            token=ctx.token,
            reply=reply,
            wants_ndjson=wants_ndjson,
            trace_id=ctx.trace_id,
            base_url=cdn.origin(cfg.embedded, _base_url(request)),
            headers=dict(request.headers),
            faults=ctx.faults,
        ),
    )
    if task.callback_url and answers_at_once:
        callbacks.start(state, task)
    reset = faults_mod.first(ctx.faults, "reset")
    if reset is not None:  # reset;after_submit=1: the task exists, but the client hears nothing
        return Dropped()
    if reply == "async":
        ack: dict[str, Any] = {"task_id": task.id}
        if "trace_id" in cfg.async_ack_extra:
            ack["trace_id"] = task.trace_id
        if "success" in cfg.async_ack_extra:
            ack["success"] = True
        return JSONResponse(ack)
    if reply == "stream":
        return NdjsonStream(
            _lines(state, task, ctx.faults), cfg.ndjson_content_type, cfg.stream_header_delay_s * task.plan.time_scale
        )
    timeout = body.get("timeout")
    timeout = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else cfg.default_timeout_s
    wall = timeout * task.plan.time_scale if task.plan.time_scale > 0 else timeout
    if not await timeline.wait_done(task, wall):
        raise SimError("api_error" if task.aborted else "timeout", extra={"task_id": task.id})
    if task.status == "succeeded" or cfg.sync_failure_status == "200":
        return JSONResponse(task.final)
    assert task.error is not None
    raise SimError(
        task.error["code"],
        task.error["message"],
        status=bodies.status_for(task.error["code"]),
        extra={"task_id": task.id},
    )


@api
async def imagine(request: Request, ctx: Ctx) -> Any:
    return await _task_reply(request, ctx, intake.submit)


@api
async def edits(request: Request, ctx: Ctx) -> Any:
    return await _task_reply(request, ctx, intake.submit_edit)


@api
async def videos(request: Request, ctx: Ctx) -> Any:
    return await _task_reply(request, ctx, intake.submit_video)


@api
async def describe(request: Request, ctx: Ctx) -> Any:
    """Synchronous JSON only, as documented; its task record (type describe) is there to retrieve."""
    return await _task_reply(request, ctx, intake.submit_describe, streams=False, answers_at_once=False)


def _required_text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise SimError("bad_request", f"{name} is required")
    if len(value) > MAX_TEXT:
        raise SimError("bad_request", f"{name} is longer than {MAX_TEXT} characters")
    return value


@api
async def seed(request: Request, ctx: Ctx) -> Any:
    image_id = ctx.body.get("image_id")
    if image_id in (None, ""):
        raise SimError("bad_request", "image_id is required")
    image = ctx.state.image(str(image_id))
    if image is None:
        raise SimError("bad_request", f"Image `{image_id}` was not found")
    return JSONResponse({"seed": planning.seed_for(ctx.state, image)})


@api
async def shorten(request: Request, ctx: Ctx) -> Any:
    text = _required_text(ctx.body, "prompt")
    if not ctx.state.config.embedded:
        text, _ = faults_mod.strip_prompt(text)
    return JSONResponse({"prompts": texts.shorten(text)})


@api
async def translate(request: Request, ctx: Ctx) -> Any:
    return JSONResponse({"content": texts.translate(_required_text(ctx.body, "content"))})


async def _lines(state: SimState, task: SimTask, fs: list[faults_mod.Fault]) -> AsyncIterator[bytes | Cut]:
    """The ndjson body: one line per event, with the stream faults applied (docs/upstream.md, "The stream")."""
    cfg = state.config
    newline = b"\r\n" if cfg.ndjson_newline == "crlf" else b"\n"
    cut, bad, slow = (faults_mod.first(fs, n) for n in ("stream_cut", "stream_malformed", "slow"))
    after = cut.int("after_lines", 1) if cut else None
    bad_line = bad.int("line", 2) if bad else None
    line_delay = slow.num("line_delay", 0.0) if slow else 0.0
    written = index = 0
    while not task.aborted:
        if not await timeline.wait(task, index, cfg.heartbeat_s):
            yield newline  # heartbeat: a blank line
            continue
        events, index = task.events[index:], len(task.events)
        for event in events:
            data = json.dumps(event, separators=(",", ":")).encode()
            if after is not None and written >= after:
                yield Cut(data[: len(data) // 2] if cut is not None and cut.flag("mid_line") else b"")
                return
            if bad_line is not None and written + 1 == bad_line:
                data = b'{"progress": 50, "image_url": '
            if line_delay and written:
                await anyio.sleep(line_delay)
            yield data + newline  # resumed once the line was handed to the socket
            if state.line_stamps is not None:
                state.line_stamps.append((task.id, event.get("progress"), time.perf_counter()))
            written += 1
        if task.done and index >= len(task.events):
            return


@api
async def tasks(request: Request, ctx: Ctx) -> Any:
    state, body = ctx.state, ctx.body
    action = body.get("action") or "retrieve"
    hidden = faults_mod.first(ctx.faults, "not_found_task") is not None
    if action == "retrieve":
        task = None if hidden else retrieval.find(state, ctx.token, body.get("id"), body.get("trace_id"))
        return JSONResponse(retrieval.record(state, task) if task else {})
    if action == "retrieve_batch":
        return JSONResponse({"items": [], "count": 0} if hidden else retrieval.batch(state, ctx.token, body))
    raise SimError("bad_request", f"Unsupported action `{action}`")


@api
async def not_implemented(request: Request, ctx: Ctx) -> Any:
    raise SimError("api_not_implemented")


async def _received(state: SimState, request: Request) -> tuple[Any, bool, str]:
    """Read and log a request to an upstream path; (parsed body, parsed ok, new trace id)."""
    raw = await request.body()
    body, ok = parse_json(raw)
    state.log_request(
        request.method,
        request.url.path,
        request.url.query,
        dict(request.headers),
        body if ok else raw.decode("utf-8", "replace"),
    )
    with state.lock:
        trace_id = state.ids.uuid()
    return body, ok, trace_id


async def not_found(request: Request) -> Any:
    state = sim_of(request)
    _, _, trace_id = await _received(state, request)
    return error_response(state, SimError("not_found", f"No route for {request.url.path}"), trace_id)
