"""Pointed at an upstream that replays the exact payloads of the API guide, every result parses.

The replay upstream is a real HTTP server on loopback; its bodies are the guide's code blocks verbatim
(tests/fixtures/guide_payloads.json), including the ndjson stream with CRLF line ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support import ThreadedApp, call

from mj_mcp import errors
from mj_mcp.server import build_server
from mj_mcp.settings import Settings
from mj_mcp.upstream.models import TaskUpdate
from mj_mcp.upstream.wire import error_from_response

pytestmark = pytest.mark.anyio

GUIDE = json.loads((Path(__file__).parent / "fixtures" / "guide_payloads.json").read_text())


def ndjson(*objects_or_lines) -> Response:
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objects_or_lines]
    return Response("\r\n".join(lines) + "\r\n", media_type="application/x-ndjson")


async def imagine(request: Request) -> Response:
    body = await request.json()
    action = body.get("action", "generate")
    if action == "generate":
        urls = [t for t in body["prompt"].split() if t.startswith("https://")]
        if len(urls) >= 2:
            return JSONResponse(GUIDE["blend"])
        if len(urls) == 1:
            return ndjson(GUIDE["image_prompt"])
        return ndjson(*GUIDE["stream_lines"])  # the guide's three streamed lines, verbatim
    if action == "variation2":
        return JSONResponse(GUIDE["variation2"])  # a plain JSON reply (sync mode) parses too
    if action == "upscale4":
        return ndjson(GUIDE["upscale4"])
    if action == "variation_region":
        return ndjson(GUIDE["variation_region"])
    return JSONResponse({"error": {"code": "bad_request", "message": "not in the guide"}}, status_code=400)


async def tasks(request: Request) -> Response:
    body = await request.json()
    record = GUIDE["task_record"]
    return JSONResponse(record if body.get("id") == record["id"] else {})


@pytest.fixture(scope="module")
def replay():
    app = Starlette(
        routes=[
            Route("/midjourney/imagine", imagine, methods=["POST"]),
            Route("/midjourney/tasks", tasks, methods=["POST"]),
        ]
    )
    with ThreadedApp(app) as server:
        yield server


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_every_guide_payload_parses_through_the_tools(replay, mode):
    settings = Settings(api_token=SecretStr("t"), base_url=replay.base_url, heartbeat_s=0.05, store="memory")
    async with Client(build_server(settings), mode=mode) as c:
        r, grid, text, events = await call(c, "imagine", prompt="a beautiful cat --v 6")
        assert not r.is_error, text
        final = json.loads(GUIDE["stream_lines"][-1])
        assert grid["image_id"] == final["image_id"]  # only the final line's id is kept
        assert (grid["kind"], grid["raw_width"], grid["actions"]) == ("grid", 2048, final["actions"])
        assert events and events[-1][0] == 100  # instant replay: steps may coalesce, the end may not
        assert grid["simulated"] is False and not text.startswith("[simulated]")

        r, varied, text, _ = await call(c, "apply_action", image="beautiful-cat", action="variation2")
        assert not r.is_error, text
        assert varied["image_id"] == GUIDE["variation2"]["image_id"] and varied["name"] == "beautiful-cat.v2"

        r, single, text, _ = await call(c, "apply_action", image="beautiful-cat.v2", action="upscale4")
        up = GUIDE["upscale4"]
        assert (single["kind"], single["width"], single["raw_width"], single["actions"]) == (
            "single",
            512,
            1024,
            up["actions"],
        )

        r, region, text, _ = await call(
            c,
            "inpaint_region",
            image="beautiful-cat.v2.u4",
            region={"shape": "ellipse", "box": [0.2, 0.2, 0.6, 0.6]},
            prompt="A cute cat",
        )
        assert not r.is_error, text
        assert region["image_id"] == GUIDE["variation_region"]["image_id"]
        assert region["raw_image_url"].startswith("https://platform.cdn.acedata.cloud/")

        r, prompted, text, _ = await call(
            c,
            "imagine",
            prompt="an illustration of a car parked on the beach --iw 2",
            images=["https://cdn.acedata.cloud/v014oc.png"],
        )
        assert (prompted["width"], prompted["height"], prompted["raw_width"]) == (1456, 816, 2912)

        r, blended, text, _ = await call(
            c,
            "blend",
            images=["https://cdn.acedata.cloud/8fapzl.png", "https://cdn.acedata.cloud/c1igbw.png"],
            prompt="The bear is holding the chainsaw --iw 2",
        )
        assert blended["image_id"] == GUIDE["blend"]["image_id"]

        record = GUIDE["task_record"]
        r, task, text, _ = await call(c, "get_task", ref=record["id"])
        assert not r.is_error, text
        assert task["status"] == "completed" and task["image_id"] == record["response"]["image_id"]
        assert task["prompt"] == record["request"]["prompt"] and task["name"] == "sitting-table"


def test_callback_payloads_and_string_sizes_parse():
    ok = TaskUpdate.model_validate(GUIDE["callback_success"])
    assert ok.succeeded_fully and ok.image_url and not ok.failed and ok.raw_image_width == 2048
    bad = TaskUpdate.model_validate(GUIDE["callback_failure"])
    assert bad.failed and not bad.succeeded_fully
    exc = bad.failure()
    assert isinstance(exc, errors.TaskFailed) and exc.code == "bad_request" and "`-c`" in exc.message
    # the OpenAPI spec types sizes as strings
    typed = TaskUpdate.model_validate({**GUIDE["generate"], "image_width": "1024", "raw_image_height": "2048"})
    assert (typed.image_width, typed.raw_image_height) == (1024, 2048)


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [
        (
            400,
            b'{"error": {"code": "bad_request", "message": "The json payload is not valid to request the API"}, '
            b'"trace_id": "2efa9340"}',
            errors.BadRequest,
            "bad_request",
            "The json payload is not valid",
        ),
        (
            500,
            b'{"success": false, "error": {"code": "api_error", "message": "fetch failed"}, "trace_id": "2cf8"}',
            errors.ServerError,
            "api_error",
            "fetch failed",
        ),
        (
            401,
            b'{"error": {"code": "invalid_token", "message": "The specified token is invalid or wrong."}}',
            errors.AuthError,
            "invalid_token",
            "invalid or wrong",
        ),
        (
            403,
            b'{"error": {"code": "used_up", "message": "Your balance is used up."}}',
            errors.BalanceError,
            "used_up",
            "balance",
        ),
        (
            403,
            b'{"error": {"code": "forbidden", "message": "Sorry! Our Al moderators feel your prompt might be '
            b'against"}}',
            errors.ModerationError,
            "forbidden",
            "moderators",
        ),
        (
            429,
            b'{"error": {"code": "too_many_requests", "message": "You have exceeded the rate limit."}}',
            errors.RateLimited,
            "too_many_requests",
            "rate limit",
        ),
        (
            504,
            b'{"error": {"code": "timeout", "message": "Timeout to generate the image."}}',
            errors.UpstreamTimeout,
            "timeout",
            "Timeout",
        ),
        (402, b'{"error": "payment required"}', errors.BadRequest, "http_402", "payment required"),
        (422, b'{"detail": "field required"}', errors.BadRequest, "http_422", "field required"),
        (502, b"<html><body>Bad Gateway</body></html>", errors.ServerError, "http_502", "Bad Gateway"),
        (500, b"", errors.ServerError, "http_500", "empty body"),
        (400, b'{"error": null}', errors.BadRequest, "http_400", "HTTP 400"),
    ],
)
def test_every_error_shape_maps_to_one_typed_error(status, body, cls, code, message):
    exc = error_from_response(status, body)
    assert type(exc) is cls and exc.code == code and message in exc.message and exc.status == status
    assert exc.next_step and exc.next_step in str(exc)
