"""The shape the next endpoints plug into: a job on an endpoint that answers at once (describe), or on one
upstream runs as a task whose kind is not an image (videos), goes through the same studio steps and jobs as
imagine (stored first, one follower, never resent) with nothing but a ``Plan``. Against an upstream on
loopback that answers as docs/upstream.md says (the simulator does not serve these endpoints yet)."""

from __future__ import annotations

import json

import pytest
from conftest import settings_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support import ThreadedApp

from mj_mcp import errors
from mj_mcp.core.kinds import Kind
from mj_mcp.records import Record
from mj_mcp.studio import Studio
from mj_mcp.studio.plans import Plan
from mj_mcp.upstream.requests import DESCRIBE, VIDEOS, DescribeBody, VideosBody

pytestmark = pytest.mark.anyio

PROMPTS = ["a gold sailboat --ar 75:3", "a boat of coins --ar 75:3", "gold coin bubbles --ar 75:3", "a raft --ar 75:3"]
CLIPS = [f"https://cdn.example/v/0_{n}.mp4" for n in range(4)]


class Upstream:
    """/describe answers at once (or fails, when told); /videos streams a cover before its clips."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.describe_fails = False

    async def describe(self, request: Request) -> Response:
        self.seen.append((request.url.path, await request.json()))
        if self.describe_fails:
            return JSONResponse({"error": {"code": "api_error", "message": "fetch failed"}}, status_code=500)
        return JSONResponse({"descriptions": PROMPTS})

    async def videos(self, request: Request) -> Response:
        self.seen.append((request.url.path, await request.json()))
        base = {"success": True, "task_id": "v-1", "video_id": "17"}
        lines = [
            {**base, "progress": 50},
            {**base, "progress": 100, "image_url": "https://cdn.example/cover.png"},
            {**base, "progress": 100, "image_url": "https://cdn.example/cover.png", "video_urls": CLIPS},
        ]
        body = "".join(json.dumps(line) + "\r\n" for line in lines)
        return Response(body, media_type="application/x-ndjson")


@pytest.fixture
async def peer_studio():
    peer = Upstream()
    app = Starlette(
        routes=[
            Route("/midjourney/describe", peer.describe, methods=["POST"]),
            Route("/midjourney/videos", peer.videos, methods=["POST"]),
        ]
    )
    with ThreadedApp(app) as server:
        async with Studio.open(settings_for(server)) as studio:
            yield studio, peer


async def test_a_job_answered_at_once_is_stored_first_and_completes_with_its_texts(peer_studio):
    studio, peer = peer_studio
    call = studio.call()
    plan = Plan(Record(name="sailboat-words", kind=Kind.TEXTS), DESCRIBE, DescribeBody(image_url="https://x/a.png"))
    record = await call.generate(plan, 10)
    assert (record.status, record.kind, record.prompts) == ("completed", Kind.TEXTS, PROMPTS)
    assert record.media == [] and record.public()["prompts"] == PROMPTS
    stored = await call.workspace.resolve("sailboat-words")
    assert stored.prompts == PROMPTS and stored.submission is None
    assert peer.seen == [("/midjourney/describe", {"image_url": "https://x/a.png"})]


async def test_a_failed_answer_is_never_resent_and_frees_the_name(peer_studio):
    studio, peer = peer_studio
    peer.describe_fails = True
    call = studio.call()
    plan = Plan(Record(name="sailboat-words", kind=Kind.TEXTS), DESCRIBE, DescribeBody(image_url="https://x/a.png"))
    with pytest.raises(errors.ServerError, match="fetch failed"):
        await call.generate(plan, 10)
    # billed: a 5xx may follow a started job
    assert len(peer.seen) == 1
    assert await call.workspace.find("sailboat-words") is None


async def test_a_video_task_is_followed_past_its_cover_to_its_clips(peer_studio):
    studio, peer = peer_studio
    call = studio.call()
    body = VideosBody(prompt="the fox runs", image_url="https://x/fox.png", mode="fast")
    record = await call.generate(Plan(Record(name="fox-runs", kind=Kind.VIDEOS), VIDEOS, body), 10)
    assert (record.status, record.kind, record.video_id, record.videos) == ("completed", Kind.VIDEOS, "17", CLIPS)
    assert [m.mime for m in record.media] == ["video/mp4"] * 4
    assert peer.seen == [
        (
            "/midjourney/videos",
            {"action": "generate", "prompt": "the fox runs", "image_url": "https://x/fox.png", "mode": "fast"},
        )
    ]
