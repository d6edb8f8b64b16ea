"""The fake-only control API under ``/__fake/``: knobs, queued faults, reset, and what the
simulator saw (tasks, requests, callbacks). Not logged.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from . import faults as faults_mod
from .endpoints import parse_json, sim_of
from .knobs import SimConfig


def _control_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "bad_request" if status == 400 else "method_not_allowed",
                                   "message": message}, "trace_id": ""}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    body, ok = parse_json(await request.body())
    return body if ok and isinstance(body, dict) else {}


async def fake_config(request: Request) -> Any:
    state = sim_of(request)
    if request.method == "POST":
        try:
            state.configure(**await _json_body(request))
        except ValidationError as exc:
            return _control_error(400, str(exc))
    elif request.method != "GET":
        return _control_error(405, "use GET or POST")
    return JSONResponse(state.config.model_dump())


async def fake_inject(request: Request) -> Any:
    if request.method != "POST":
        return _control_error(405, "use POST")
    body = await _json_body(request)
    if not isinstance(body.get("fault"), str):
        return _control_error(400, "fault is required, e.g. {\"path\": \"/midjourney/imagine\", \"fault\": \"429\"}")
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    try:
        sim_of(request).inject(str(body.get("path") or "*"), body["fault"], int(body.get("times") or 1), **params)
    except faults_mod.FaultSpecError as exc:
        return _control_error(400, str(exc))
    return JSONResponse({"ok": True})


async def fake_reset(request: Request) -> Any:
    if request.method != "POST":
        return _control_error(405, "use POST")
    body = await _json_body(request)
    try:
        sim_of(request).reset(SimConfig(**body) if body else None)
    except ValidationError as exc:
        return _control_error(400, str(exc))
    return JSONResponse({"ok": True})


async def fake_tasks(request: Request) -> Any:
    records = sorted(sim_of(request).tasks.values(), key=lambda r: r["created_at"], reverse=True)
    return JSONResponse(records)


async def fake_requests(request: Request) -> Any:
    return JSONResponse(sim_of(request).requests(request.query_params.get("path")))


async def fake_callbacks(request: Request) -> Any:
    return JSONResponse(sim_of(request).callbacks)


