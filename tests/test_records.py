"""Records with a result kind: the kind decides when upstream's word on a task is final and what the
record's media are; records stored by mj-mcp 0.2 (image records, in SQLite and in Redis) load and run
after the upgrade."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import TOKEN, settings_for
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from support import PATIENCE, ThreadedApp, call

from mj_mcp.core.kinds import Kind
from mj_mcp.jobs import Jobs, heard_of
from mj_mcp.records import ErrorInfo, Heard, Outcome, Record, advanced, ends, results_of
from mj_mcp.server import build_server
from mj_mcp.store import MemoryStore, SqliteStore, open_store
from mj_mcp.upstream import TaskUpdate, Upstream
from mj_mcp.upstream.registry import Upstreams

pytestmark = pytest.mark.anyio

GRID_ACTIONS = [
    "upscale1",
    "upscale2",
    "upscale3",
    "upscale4",
    "reroll",
    "variation1",
    "variation2",
    "variation3",
    "variation4",
]
CLIPS = [f"https://cdn.example/v/0_{n}.mp4" for n in range(4)]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("kind", "unfinished", "finished"),
    [
        (Kind.GRID, Outcome(), Outcome(image_url="https://cdn.example/g.png", actions=GRID_ACTIONS)),
        # a video's reply carries its cover picture before its clips
        (Kind.VIDEOS, Outcome(image_url="https://cdn.example/cover.png"), Outcome(video_id="17", videos=CLIPS)),
        (Kind.TEXTS, Outcome(), Outcome(prompts=["a boat", "a ship", "a raft", "a yacht"])),
        (Kind.SEED, Outcome(), Outcome(seed="1515630083539206144")),
    ],
)
def test_the_kind_decides_when_upstreams_word_is_final(kind, unfinished, finished):
    assert not ends(kind, Heard(succeeded=True, progress=100, outcome=unfinished))
    assert not ends(kind, Heard(progress=60, outcome=finished))  # not said to have succeeded yet
    assert ends(kind, Heard(succeeded=True, progress=100, outcome=finished))
    assert ends(kind, Heard(error=ErrorInfo(code="api_error", message="fetch failed")))
    running = Record(name="x", kind=kind)
    assert advanced(running, Heard(succeeded=True, progress=100, outcome=unfinished)).status == "running"
    done = advanced(running, Heard(succeeded=True, progress=100, outcome=finished))
    assert done.status == "completed" and done.kind is kind


def test_the_kind_decides_the_media():
    grid = Record(name="g", kind=Kind.GRID, status="completed", image_id="1", raw_image_url="https://cdn.example/g.png")
    assert [(m.url, m.mime, m.key) for m in grid.media] == [("https://cdn.example/g.png", "image/png", "1")]
    clips = Record(
        name="v",
        kind=Kind.VIDEOS,
        status="completed",
        video_id="17",
        videos=CLIPS,
        image_url="https://cdn.example/cover.png",
    )
    assert [(m.url, m.mime, m.key) for m in clips.media] == [(u, "video/mp4", f"17-{n}") for n, u in enumerate(CLIPS)]
    texts = Record(name="t", kind=Kind.TEXTS, status="completed", prompts=["a"])
    assert texts.media == [] and not texts.is_image and texts.public()["prompts"] == ["a"]
    assert "prompts" not in grid.public() and "videos" in clips.public()
    assert Record(name="r", kind=Kind.GRID).media == []  # nothing until it completes


def test_the_vendors_edit_answer_completes_an_edit_with_four_named_results():
    example = json.loads((FIXTURES / "endpoint_payloads.json").read_text())["edits"]
    running = Record(name="cat-table.edit", kind=Kind.EDITS, parent="cat-table", action="edit", prompt="a cat")
    done = advanced(running, heard_of(TaskUpdate.model_validate(example)))
    assert (done.status, done.kind, done.sub_images, done.actions) == (
        "completed",
        Kind.EDITS,
        example["sub_image_urls"],
        [],
    )
    assert [(m.url, m.key) for m in done.media] == [(u, None) for u in example["sub_image_urls"]]
    assert "sub_images" in done.public() and not done.is_image
    made = results_of(done)
    assert [r.name for r in made] == [f"cat-table.edit.{n}" for n in range(1, 5)]
    for n, (result, url) in enumerate(zip(made, example["sub_image_urls"], strict=True), start=1):
        assert (result.id, result.kind, result.parent, result.parent_id) == (
            f"{done.id}-{n}",
            Kind.EDITED,
            done.name,
            done.id,
        )
        assert result.media[0].url == url and result.is_image and result.task_id is None
    # made again from the same record: the same ids (a store adds nothing twice)
    assert [r.id for r in results_of(done)] == [r.id for r in made]
    # an edit's answer without separate results ends it with its one picture, and makes no records
    alone = advanced(running, heard_of(TaskUpdate.model_validate({**example, "sub_image_urls": []})))
    assert alone.status == "completed" and [m.url for m in alone.media] == [example["raw_image_url"]]
    assert results_of(alone) == [] and results_of(running) == []


class TaskPeer:
    """An upstream on loopback whose /midjourney/tasks answers one scripted reply per lookup."""

    def __init__(self, replies: list[dict]) -> None:
        self.replies = replies
        self.lookups = 0

    async def tasks(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.lookups += 1
        response = self.replies[min(self.lookups, len(self.replies)) - 1]
        return JSONResponse({"id": body["id"], "type": "videos", "request": {}, "response": response})


async def test_a_video_job_is_followed_until_its_clips_are_there():
    """Before result kinds, a reply at 100% with a picture ended any job: a video's cover came first
    and the job ended without its clips (a text job, never)."""
    cover = {"success": True, "progress": 100, "image_url": "https://cdn.example/cover.png"}
    peer = TaskPeer([cover, cover, {**cover, "video_id": "17", "video_urls": CLIPS}])
    app = Starlette(routes=[Route("/midjourney/tasks", peer.tasks, methods=["POST"])])
    with ThreadedApp(app) as server:
        settings = settings_for(server, base_url=server.base_url)
        upstream = Upstream(settings)
        store = MemoryStore()
        try:
            async with anyio.create_task_group() as tg:
                jobs = Jobs(Upstreams(upstream), store, settings, tg)
                record = Record(name="fox-run", kind=Kind.VIDEOS, task_id="t-1")
                await store.add(record)
                await jobs.get(record, catch_up_s=0)

                async def report(progress: float, message: str) -> None:
                    pass

                with anyio.fail_after(PATIENCE):
                    while (done := (await jobs.watch(record, 5, report)).record).status == "running":
                        pass
                tg.cancel_scope.cancel()
        finally:
            await upstream.aclose()
    assert done.status == "completed" and done.videos == CLIPS and done.video_id == "17"
    assert peer.lookups == 3
    assert (await store.get(record.id)).videos == CLIPS


# Records as mj-mcp 0.2 wrote them (``ImageRecord.model_dump_json()`` of that version), with the
# simulator's ids and URLs filled in by the test: a finished grid, and a submit that lost its
# connection before upstream named its task (its fingerprint flat, as 0.2 kept it).
OLD_GRID = (
    '{"id":"0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a","workspace":"default","name":"fox-snow","status":"completed",'
    '"progress":100.0,"kind":"grid","task_id":"%(task_id)s","image_id":"%(image_id)s","image_url":"%(image_url)s",'
    '"raw_image_url":"%(raw_image_url)s","width":1024,"height":1024,"raw_width":2048,"raw_height":2048,'
    '"actions":%(actions)s,"parent":null,"parent_id":null,"action":"generate","prompt":"a red fox in snow",'
    '"sources":[],"error":null,"created_at":%(at)s,"submission":null,"preview_url":null,"callback_key":null}'
)
OLD_LOST = (
    '{"id":"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b","workspace":"default","name":"lost-comet","status":"running",'
    '"progress":0.0,"kind":null,"task_id":null,"image_id":null,"image_url":null,"raw_image_url":null,'
    '"width":null,"height":null,"raw_width":null,"raw_height":null,"actions":[],"parent":null,"parent_id":null,'
    '"action":"generate","prompt":"a lost comet","sources":[],"error":null,"created_at":%(at)s,'
    '"submission":{"action":"generate","prompt":"a lost comet","image_id":null,"at":%(at)s},'
    '"preview_url":null,"callback_key":null}'
)


async def _write_rows_as_0_2(backend: str, url: str, rows: list[str]) -> None:
    """Each row as 0.2's store wrote it: its looked-up columns and its JSON, byte for byte."""
    if backend == "sqlite":
        await (await SqliteStore(__import__("pathlib").Path(url.removeprefix("sqlite:///"))).open()).close()
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        with db:
            for row in rows:
                r = json.loads(row)
                db.execute(
                    "INSERT INTO records (id, workspace, name, status, task_id, image_id, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (r["id"], r["workspace"], r["name"], r["status"], r["task_id"], r["image_id"], row),
                )
        db.close()
    else:
        store = await open_store(url)
        for row in rows:
            r = json.loads(row)
            # The store's own write of a whole record: its hash of lookups and the JSON as it is given.
            await store._run(
                "save", r["id"], r["workspace"], r["name"], r["status"], r["task_id"] or "", r["image_id"] or "", row
            )
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_records_stored_by_0_2_load_and_run_after_the_upgrade(backend, fresh_sim, tmp_path, request):
    auth = {"authorization": f"Bearer {TOKEN}"}
    grid = httpx.post(
        f"{fresh_sim.base_url}/midjourney/imagine", json={"prompt": "a red fox in snow"}, headers=auth, timeout=30
    ).json()
    lost = httpx.post(
        f"{fresh_sim.base_url}/midjourney/imagine",
        json={"prompt": "a lost comet", "async": True},
        headers=auth,
        timeout=30,
    ).json()
    now = time.time()
    rows = [OLD_GRID % {**grid, "actions": json.dumps(grid["actions"]), "at": now - 60}, OLD_LOST % {"at": now}]
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        server = request.getfixturevalue("redis_server")
        server.flush(7)
        url = server.url(7)
    await _write_rows_as_0_2(backend, url, rows)

    async with Client(build_server(settings_for(fresh_sim, store=url))) as c:
        result, listed, _, _ = await call(c, "list_images")
        assert [(i["name"], i["kind"], i["status"]) for i in listed["images"]] == [
            ("lost-comet", None, "running"),
            ("fox-snow", "grid", "completed"),
        ]
        # the lost submit is found by its 0.2 fingerprint, never sent again
        result, comet, text, _ = await call(c, "get_task", ref="lost-comet", wait_seconds=20)
        assert comet["status"] == "completed" and comet["task_id"] == lost["task_id"], text
        assert comet["kind"] == "grid"
        assert len(fresh_sim.state.requests("/midjourney/imagine")) == 2
        read = await c.read_resource("mj://images/fox-snow")
        assert read.contents[0].mime_type == "image/png"
        result, single, text, _ = await call(c, "apply_action", image="fox-snow", action="upscale2")
        assert not result.is_error and single["name"] == "fox-snow.u2" and single["kind"] == "single", text
