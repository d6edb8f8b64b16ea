"""The upstream package alone: every endpoint is a typed request whose body and reply models read the
vendor's own examples; one retry policy decides what is sent again, checked against a real HTTP peer on
loopback; the fingerprint of a submit finds its task again, for every endpoint upstream runs as a task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support import ThreadedApp

from mj_mcp import errors
from mj_mcp.records import Submission
from mj_mcp.settings import Settings
from mj_mcp.upstream import ENDPOINTS, TASK_ENDPOINTS, Retry, Upstream
from mj_mcp.upstream.models import TaskUpdate
from mj_mcp.upstream.requests import (
    DESCRIBE,
    EDITS,
    IMAGINE,
    VIDEOS,
    DescribeBody,
    EditsBody,
    ImagineBody,
    RetrieveBatchBody,
    VideosBody,
)

pytestmark = pytest.mark.anyio

EXAMPLES = json.loads((Path(__file__).parent / "fixtures" / "endpoint_payloads.json").read_text())


def test_every_endpoint_of_the_api_is_declared_with_its_policy():
    assert set(ENDPOINTS) == {
        "imagine",
        "edits",
        "videos",
        "describe",
        "seed",
        "shorten",
        "translate",
        "retrieve",
        "retrieve_batch",
    }
    for name, endpoint in ENDPOINTS.items():
        assert endpoint.path.startswith("/midjourney/")
        lookup = name.startswith("retrieve")
        assert endpoint.retry is (Retry.LOOKUP if lookup else Retry.BILLED), name
        # only the endpoints upstream runs as tasks stream (docs/upstream.md, "Requests")
        assert endpoint.streams is (name in TASK_ENDPOINTS), name
        # upstream keeps a task for each of those, and for describe, whose answer comes at once
        assert (endpoint.task_type is not None) is (name in TASK_ENDPOINTS or name == "describe"), name
        assert lookup or endpoint.fingerprint, f"{name}: a billed request needs a fingerprint"


@pytest.mark.parametrize("example", ["edits", "videos", "videos_extend", "describe", "seed", "shorten", "translate"])
def test_the_vendors_examples_are_bodies_and_replies_every_field_read(example):
    endpoint = ENDPOINTS[example.split("_")[0]]
    sent = EXAMPLES[f"{example}_request"]
    assert endpoint.body.model_validate(sent).wire() == sent  # nothing added, nothing lost
    reply = endpoint.reply.model_validate(EXAMPLES[example])
    read = reply.model_dump(exclude_none=True, exclude_defaults=True)
    unread = set(EXAMPLES[example]) - set(read)
    assert not unread, f"{example}: {unread} not read"
    for key, value in EXAMPLES[example].items():
        assert read[key] == value, key


def test_the_async_acks_and_a_task_batch_parse():
    for ack in ("edits_async", "videos_async"):
        assert TaskUpdate.model_validate(EXAMPLES[ack]).task_id == EXAMPLES[ack]["task_id"]
    batch = ENDPOINTS["retrieve_batch"].reply.model_validate(EXAMPLES["task_batch"])
    assert [t.type for t in batch.items] == ["imagine", "videos"] and batch.count == 2


def test_a_body_sends_only_what_is_set_and_refuses_what_the_api_does_not_take():
    assert ImagineBody(prompt="a cat", mode="fast").wire() == {"action": "generate", "prompt": "a cat", "mode": "fast"}
    armed = ImagineBody(prompt="a cat").model_copy(update={"asynchronous": True, "callback_url": "https://x/cb"})
    assert armed.wire() == {"action": "generate", "prompt": "a cat", "async": True, "callback_url": "https://x/cb"}
    with pytest.raises(ValueError):
        VideosBody(action="extend", video_id="1", video_index=4)
    with pytest.raises(ValueError):
        VideosBody(mode="relax")  # video has no relax mode
    with pytest.raises(ValueError):
        DescribeBody(image_url="https://x/a.png", prompt="a cat")  # a field the endpoint does not take


@pytest.mark.parametrize(
    ("endpoint", "body", "recorded_extra", "other"),
    [
        (
            IMAGINE,
            ImagineBody(prompt="a red kite", mode="fast"),
            {"trace_id": "t", "stream": True},
            ImagineBody(prompt="a blue kite"),
        ),
        (
            IMAGINE,
            ImagineBody(action="upscale2", image_id="123", mode="fast"),
            {},
            ImagineBody(action="upscale2", image_id="124"),
        ),
        (
            EDITS,
            EditsBody(image_url="https://x/cat.png", prompt="a hat"),
            {"version": "1.0"},
            EditsBody(image_url="https://x/dog.png", prompt="a hat"),
        ),
        (
            VIDEOS,
            VideosBody(action="extend", prompt="go", video_id="17", video_index=1),
            {},
            VideosBody(action="extend", prompt="go", video_id="17", video_index=2),
        ),
    ],
)
def test_the_fingerprint_of_a_submit_finds_its_task_and_no_other(endpoint, body, recorded_extra, other):
    sent = Submission(endpoint=endpoint.name, fingerprint=endpoint.fingerprint_of(body))
    # as a stored record would read it back
    sent = Submission.model_validate_json(sent.model_dump_json())
    recorded = {**body.wire(), **recorded_extra}
    assert endpoint.recorded_as(recorded, sent.fingerprint)
    assert not endpoint.recorded_as(other.wire(), sent.fingerprint)


def test_a_fingerprint_stored_by_mj_mcp_0_2_still_finds_its_task():
    old = Submission.model_validate({"action": "generate", "prompt": "a lost comet", "image_id": None, "at": 1.5})
    assert (old.endpoint, old.at) == ("imagine", 1.5)
    assert IMAGINE.recorded_as({"prompt": "a lost comet", "mode": "fast"}, old.fingerprint)  # action left out
    assert not IMAGINE.recorded_as({"prompt": "a lost comet", "action": "reroll"}, old.fingerprint)


class Peer:
    """A real HTTP upstream on loopback that answers each path from a script and counts requests."""

    def __init__(self) -> None:
        self.script: dict[str, list[Response]] = {}
        self.seen: list[str] = []

    async def handle(self, request: Request) -> Response:
        self.seen.append(request.url.path)
        replies = self.script.get(request.url.path) or [JSONResponse({})]
        return replies.pop(0) if len(replies) > 1 else replies[0]


@pytest.fixture
def peer():
    p = Peer()
    app = Starlette(routes=[Route("/midjourney/{rest:path}", p.handle, methods=["POST"])])
    with ThreadedApp(app) as server:
        p.base_url = server.base_url
        yield p


def _client(peer: Peer) -> Upstream:
    return Upstream(Settings(api_token=SecretStr("t"), base_url=peer.base_url, retry_backoff_s=0.001, store="memory"))


def _error(status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": code}}, status_code=status)


async def test_a_billed_request_is_resent_only_after_a_rejection(peer):
    client = _client(peer)
    try:
        peer.script["/midjourney/describe"] = [_error(500, "api_error")]
        with pytest.raises(errors.ServerError):
            await client.ask(DESCRIBE, DescribeBody(image_url="https://x/a.png"))
        assert peer.seen.count("/midjourney/describe") == 1  # a 5xx may follow a started (billed) job

        peer.seen.clear()
        peer.script["/midjourney/describe"] = [_error(429, "too_many_requests"), JSONResponse(EXAMPLES["describe"])]
        reply = await client.ask(DESCRIBE, DescribeBody(image_url="https://x/a.png"))
        assert reply.descriptions == EXAMPLES["describe"]["descriptions"] and len(peer.seen) == 2

        peer.seen.clear()
        peer.script["/midjourney/imagine"] = [_error(504, "timeout")]
        with pytest.raises(errors.UpstreamTimeout):
            async for _ in client.run(IMAGINE, ImagineBody(prompt="a cat"), done=lambda u: True):
                pass
        assert len(peer.seen) == 1
    finally:
        await client.aclose()


async def test_a_lookup_is_retried_on_every_transient_failure(peer):
    client = _client(peer)
    try:
        peer.script["/midjourney/tasks"] = [
            _error(500, "api_error"),
            _error(504, "timeout"),
            JSONResponse(EXAMPLES["task_batch"]),
        ]
        tasks = await client.retrieve_batch(RetrieveBatchBody(limit=50))
        assert [t.id for t in tasks] == [t["id"] for t in EXAMPLES["task_batch"]["items"]] and len(peer.seen) == 3
        peer.seen.clear()
        peer.script["/midjourney/tasks"] = [_error(400, "bad_request")]
        with pytest.raises(errors.BadRequest):
            await client.retrieve("x")
        assert len(peer.seen) == 1  # a refusal is not transient
    finally:
        await client.aclose()


async def test_a_sync_answer_with_success_false_is_an_error(peer):
    client = _client(peer)
    try:
        peer.script["/midjourney/seed"] = [
            JSONResponse({"success": False, "error": {"code": "bad_request", "message": "unknown image"}})
        ]
        with pytest.raises(errors.BadRequest, match="unknown image"):
            await client.ask(ENDPOINTS["seed"], ENDPOINTS["seed"].body.model_validate({"image_id": "1"}))
    finally:
        await client.aclose()
