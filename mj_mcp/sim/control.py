"""The fake-only control API under ``/__fake/``: knobs, queued faults, reset, and what the simulator
saw (tasks, requests, callbacks). Not logged.

It shows the tokens and every prompt, and it can change anything, so: an embedded simulator has none
(every path answers 404 like an unknown one); a standalone one asks for ``control_secret`` in the
``x-sim-secret`` header when one is set. Nothing here changes the knobs that decide what the simulator
exposes and reaches (``knobs.START_ONLY``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from . import faults as faults_mod
from .endpoints import not_found, parse_json, sim_of
from .knobs import START_ONLY, SimConfig

SECRET_HEADER = "x-sim-secret"
_CODES = {400: "bad_request", 401: "invalid_token", 405: "method_not_allowed"}

Endpoint = Callable[[Request], Awaitable[Any]]


def _control_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": _CODES[status], "message": message}, "trace_id": ""}, status_code=status)


def guarded(endpoint: Endpoint) -> Endpoint:
    """Off when embedded; behind the secret when one is set."""

    @wraps(endpoint)
    async def check(request: Request) -> Any:
        cfg = sim_of(request).config
        if cfg.embedded:
            return await not_found(request)
        if cfg.control_secret is not None:
            given = request.headers.get(SECRET_HEADER, "").encode("latin-1")  # the bytes as sent
            if not hmac.compare_digest(given, cfg.control_secret.encode()):
                return _control_error(401, f"the control API needs the {SECRET_HEADER} header")
        return await endpoint(request)

    return check


async def _json_body(request: Request) -> dict[str, Any]:
    body, ok = parse_json(await request.body())
    return body if ok and isinstance(body, dict) else {}


def _start_only(knobs: dict[str, Any]) -> JSONResponse | None:
    fixed = sorted(START_ONLY & set(knobs))
    return _control_error(400, f"{', '.join(fixed)}: set when the simulator starts") if fixed else None


def _shown(cfg: SimConfig) -> dict[str, Any]:
    return cfg.model_dump(exclude={"control_secret"})


@guarded
async def fake_config(request: Request) -> Any:
    state = sim_of(request)
    if request.method == "POST":
        knobs = await _json_body(request)
        if (refused := _start_only(knobs)) is not None:
            return refused
        try:
            state.configure(**knobs)
        except ValidationError as exc:
            return _control_error(400, str(exc))
    elif request.method != "GET":
        return _control_error(405, "use GET or POST")
    return JSONResponse(_shown(state.config))


@guarded
async def fake_inject(request: Request) -> Any:
    if request.method != "POST":
        return _control_error(405, "use POST")
    body = await _json_body(request)
    if not isinstance(body.get("fault"), str):
        return _control_error(400, 'fault is required, e.g. {"path": "/midjourney/imagine", "fault": "429"}')
    given = body.get("params")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    try:
        times = int(body.get("times") or 1)
        sim_of(request).inject(str(body.get("path") or "*"), body["fault"], times, **params)
    except (faults_mod.FaultSpecError, ValueError, TypeError) as exc:
        return _control_error(400, str(exc))
    return JSONResponse({"ok": True})


@guarded
async def fake_reset(request: Request) -> Any:
    if request.method != "POST":
        return _control_error(405, "use POST")
    state = sim_of(request)
    body = await _json_body(request)
    if (refused := _start_only(body)) is not None:
        return refused
    try:
        config = SimConfig(**body, **{k: getattr(state.config, k) for k in START_ONLY}) if body else None
    except ValidationError as exc:
        return _control_error(400, str(exc))
    state.reset(config)
    return JSONResponse({"ok": True})


@guarded
async def fake_tasks(request: Request) -> Any:
    if request.method != "GET":
        return _control_error(405, "use GET")
    records = sorted(sim_of(request).tasks.values(), key=lambda r: r["created_at"], reverse=True)
    return JSONResponse(records)


@guarded
async def fake_requests(request: Request) -> Any:
    if request.method != "GET":
        return _control_error(405, "use GET")
    return JSONResponse(sim_of(request).requests(request.query_params.get("path")))


@guarded
async def fake_callbacks(request: Request) -> Any:
    if request.method != "GET":
        return _control_error(405, "use GET")
    return JSONResponse(sim_of(request).callbacks)
