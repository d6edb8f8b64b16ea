"""Videos through the studio, against the simulator's real MP4 clips: animate a still into four clips,
extend one, what reaches /midjourney/videos, the clips kept past their URLs, their poster, their export,
a video task started elsewhere, and everything refused before anything is sent."""

from __future__ import annotations

import io
from pathlib import Path

import av
import httpx
import pytest
from conftest import TOKEN, settings_for
from PIL import Image
from support import eventually

from mj_mcp.core.kinds import Kind
from mj_mcp.errors import ActionNotAllowed, ExportRefused, InvalidInput, UnknownReference
from mj_mcp.media import poster
from mj_mcp.records import Record
from mj_mcp.studio import Call, Studio
from mj_mcp.studio.action import apply_action
from mj_mcp.studio.animate import animate
from mj_mcp.studio.blend import blend
from mj_mcp.studio.export import export_image
from mj_mcp.studio.get import get_task
from mj_mcp.studio.imagine import imagine
from mj_mcp.studio.inpaint import inpaint_region
from mj_mcp.studio.picture import view_image

pytestmark = pytest.mark.anyio

VIDEOS = "/midjourney/videos"
IMAGINE = "/midjourney/imagine"


def sent(sim) -> list[dict]:
    return [r["body"] for r in sim.state.requests(VIDEOS)]


def decoded(data: bytes) -> tuple[int, int, int]:
    """An MP4's frame size and frame count, by decoding it."""
    with av.open(io.BytesIO(data), format="mp4") as container:
        frames = [f for f in container.decode(video=0)]
    return frames[0].width, frames[0].height, len(frames)


async def a_single(call: Call) -> Record:
    await imagine(call, prompt="a red fox in snow")
    return await apply_action(call, image="fox-snow", action="upscale2")


async def test_animate_makes_four_clips_of_an_image_named_after_it(call, progress, fresh_sim):
    single = await a_single(call)
    video = await animate(
        call, image="fox-snow.u2", prompt="the fox runs --motion high", resolution="480p", mode="turbo"
    )
    assert (video.name, video.kind, video.status, video.parent, video.action) == (
        "fox-snow.u2.vid",
        Kind.VIDEOS,
        "completed",
        "fox-snow.u2",
        "animate",
    )
    assert video.parent_id == single.id and video.sources == ["fox-snow.u2"] and video.video_id
    assert len(video.videos) == 4 and [m.mime for m in video.media] == ["video/mp4"] * 4
    assert sent(fresh_sim) == [
        {
            "action": "generate",
            "prompt": "the fox runs --motion high",
            "image_url": single.media[0].url,
            "mode": "turbo",
            "resolution": "480p",
        }
    ]
    assert progress.values[-1] == 100 and {n for n, _, _ in progress.events} >= {"fox-snow.u2.vid"}
    # each clip is a real MP4 at the asked resolution (the simulator's clips start on the image)
    for n in (1, 4):
        data, mime = await call.studio.clip(call.workspace, video.name, n)
        assert mime == "video/mp4" and decoded(data)[:2] == (480, 480)


async def test_an_end_frame_and_a_loop_are_sent_as_upstream_names_them(call, fresh_sim):
    await a_single(call)
    url = "https://cdn.example/dusk.png"
    ended = await animate(call, image="fox-snow.u2", prompt="night falls", end_image=url, name="to-dusk")
    looped = await animate(call, image=url, prompt="waves come and go", loop=True)
    assert ended.sources == ["fox-snow.u2", url] and ended.name == "to-dusk"
    assert (looped.name, looped.parent, looped.sources) == ("waves-come", None, [url])
    first, second = sent(fresh_sim)
    assert first["end_image_url"] == url and "loop" not in first and "resolution" not in first
    assert second["image_url"] == url and second["loop"] is True and "end_image_url" not in second


async def test_extend_makes_one_clip_longer_with_the_videos_own_prompt(call, fresh_sim):
    await a_single(call)
    video = await animate(call, image="fox-snow.u2", prompt="the fox runs")
    longer = await apply_action(call, image=video.name, action="extend2", mode="turbo")
    assert (longer.name, longer.kind, longer.parent, longer.parent_id, longer.action, longer.prompt) == (
        "fox-snow.u2.vid.e2",
        Kind.VIDEOS,
        video.name,
        video.id,
        "extend2",
        "the fox runs",
    )
    assert sent(fresh_sim)[-1] == {
        "action": "extend",
        "prompt": "the fox runs",
        "video_id": video.video_id,
        "video_index": 1,
        "mode": "turbo",
    }
    assert len(longer.videos) == 4 and longer.video_id != video.video_id
    # the simulator replays the clip it extends, then moves on: twice the frames
    before = decoded((await call.studio.clip(call.workspace, video.name, 2))[0])
    after = decoded((await call.studio.clip(call.workspace, longer.name, 1))[0])
    assert after[2] == 2 * before[2] and after[:2] == before[:2]
    # and an extension is extended the same way
    again = await apply_action(call, image=longer.name, action="extend4")
    assert again.name == "fox-snow.u2.vid.e2.e4" and sent(fresh_sim)[-1]["video_index"] == 3


async def test_a_video_task_started_elsewhere_is_adopted_by_its_task_id(call, fresh_sim):
    await a_single(call)
    image_url = (await call.workspace.resolve("fox-snow.u2")).media[0].url
    body = {"action": "generate", "prompt": "snow falls", "image_url": image_url}
    reply = httpx.post(
        fresh_sim.base_url + VIDEOS, json=body, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
    ).json()
    record = await get_task(call, ref=reply["task_id"])
    assert record.kind is Kind.VIDEOS and record.status == "completed" and len(record.videos) == 4
    assert (await call.studio.clip(call.workspace, record.name, 3))[1] == "video/mp4"


@pytest.fixture
async def showing(fresh_sim):
    """A studio that makes previews (and so keeps a finished video's clips at once), and a call in it."""
    async with Studio.open(settings_for(fresh_sim, preview_px=512)) as studio:
        yield studio.call()


async def test_the_clips_are_kept_past_their_urls_and_the_poster_shows_their_first_frames(showing, fresh_sim):
    call = showing
    await a_single(call)
    video = await animate(call, image="fox-snow.u2", prompt="the fox runs", resolution="720p")
    shown = await call.studio.poster(video)
    assert shown.note is None and shown.jpeg is not None
    sheet = Image.open(io.BytesIO(shown.jpeg))
    assert sheet.format == "JPEG" and max(sheet.size) == 512
    assert [(f.width, f.height) for f in shown.clips if f] == [(720, 720)] * 4
    # The simulator forgets everything: the clips' URLs serve nothing now.
    fresh_sim.state.reset(fresh_sim.state.config)
    assert httpx.get(video.videos[0], timeout=10).status_code == 404
    for n in range(1, 5):
        data, _ = await call.studio.clip(call.workspace, video.name, n)
        assert poster.is_mp4(data) and decoded(data)[:2] == (720, 720)
    # the App's picture of the video is its poster, unlabelled, at the size it asks
    picture = await view_image(call, image=video.name, max_px=256)
    assert picture.shown == "final" and picture.jpeg and max(Image.open(io.BytesIO(picture.jpeg)).size) == 256


async def test_a_clip_is_exported_as_mp4(call, fresh_sim):
    await a_single(call)
    video = await animate(call, image="fox-snow.u2", prompt="the fox runs")
    done = await export_image(call, image=video.name, path="videos/fox-run", clip=3)
    assert done.mime == "video/mp4" and done.path.endswith("videos/fox-run.mp4")
    written = Path(done.path).read_bytes()
    assert written == (await call.studio.clip(call.workspace, video.name, 3))[0] and decoded(written)
    with pytest.raises(InvalidInput) as which:
        await export_image(call, image=video.name, path="fox-run-2.mp4")
    assert "video of four clips" in which.value.message and "clip=1" in which.value.next_step
    with pytest.raises(ExportRefused, match=r"\.mp4"):
        await export_image(call, image=video.name, path="fox-run.png", clip=1)
    with pytest.raises(InvalidInput, match="no clips"):
        await export_image(call, image="fox-snow.u2", path="fox.png", clip=1)


# What is refused before anything is sent, each with a next step.
REFUSED = [
    ("animate", {"image": "fox-snow.u2", "prompt": "go", "mode": "relax"}, "no relax mode", 'mode="fast"'),
    ("animate", {"image": "http://cdn.example/a.png", "prompt": "go"}, "is not https", "https URL"),
    ("animate", {"image": "fox-snow.u2", "prompt": "go", "end_image": "http://cdn.example/b.png"}, "is not https", ""),
    ("animate", {"image": "", "prompt": "go", "end_image": "fox-snow.u2"}, "first (image) is missing", "Give image"),
    ("animate", {"image": " ", "prompt": "go"}, "no text-to-video", "imagine"),
    (
        "animate",
        {"image": "fox-snow.u2", "prompt": "go", "loop": True, "end_image": "fox-snow"},
        "loop and end_image",
        "",
    ),
    ("animate", {"image": "fox-snow.u2", "prompt": "go --loop"}, "use loop=true", "--motion low|high"),
    ("animate", {"image": "fox-snow.u2", "prompt": "go --motion wild"}, "low or high", ""),
    ("animate", {"image": "fox-snow.u2", "prompt": "go --ar 16:9"}, "unknown flag '--ar'", ""),
    ("animate", {"image": "fox-snow.u2", "prompt": "https://cdn.example/a.png go"}, "as image", ""),
    (
        "animate",
        {"image": "fox-snow.u2.vid", "prompt": "go"},
        "is a video (made from fox-snow.u2), not an image",
        "extend1",
    ),
    ("imagine", {"prompt": "a fox", "images": ["fox-snow.u2.vid"]}, "is a video", "image's name"),
    ("blend", {"images": ["fox-snow.u2", "fox-snow.u2.vid"]}, "is a video", ""),
    ("inpaint", {"image": "fox-snow.u2.vid", "region": [{"shape": "rect", "box": [0, 0, 0.5, 0.5]}]}, "is a video", ""),
    (
        "action",
        {"image": "fox-snow.u2.vid", "action": "upscale1"},
        "it is a video",
        "extend1, extend2, extend3, extend4",
    ),
    ("action", {"image": "fox-snow.u2", "action": "extend1"}, "it is an image", "upscale_2x"),
    ("action", {"image": "fox-snow.u2.vid", "action": "extend1", "mode": "relax"}, "no relax mode", "turbo"),
    ("action", {"image": "fox-snow.u2.vid", "action": "extend5"}, "unknown action 'extend5'", "extend4."),
]
OPERATIONS = {"animate": animate, "imagine": imagine, "blend": blend, "inpaint": inpaint_region, "action": apply_action}


@pytest.mark.parametrize(("operation", "args", "what", "next_step"), REFUSED)
async def test_refused_before_anything_is_sent(call, fresh_sim, operation, args, what, next_step):
    await a_single(call)
    await animate(call, image="fox-snow.u2", prompt="the fox runs")
    before = (len(sent(fresh_sim)), len(fresh_sim.state.requests(IMAGINE)))
    with pytest.raises(InvalidInput) as refused:
        await OPERATIONS[operation](call, **args)
    assert what in refused.value.message and refused.value.next_step and next_step in refused.value.next_step
    assert "Nothing was sent upstream." in str(refused.value)
    assert (len(sent(fresh_sim)), len(fresh_sim.state.requests(IMAGINE))) == before
    kinds = {"it is a video": ActionNotAllowed, "it is an image": ActionNotAllowed}
    assert isinstance(refused.value, kinds.get(what, InvalidInput))


async def test_an_unfinished_or_failed_video_is_not_extended(call, fresh_sim):
    await a_single(call)
    fresh_sim.state.inject(VIDEOS, "task_fail;at_progress=35;code=bad_request;message=no motion", times=1)
    failed = await animate(call, image="fox-snow.u2", prompt="the fox runs", name="broken")
    assert failed.status == "failed"
    fresh_sim.state.configure(time_scale=1.0)
    running = await animate(call, image="fox-snow.u2", prompt="the fox runs", name="slow", wait_seconds=0)
    assert running.status == "running"
    # The call answers before its submit leaves: counted once it is in (it landed in the next test before).
    await eventually(lambda: len(sent(fresh_sim)) == 2, "the running video's submit to reach the simulator")
    submitted = len(sent(fresh_sim))
    with pytest.raises(InvalidInput, match="still generating") as refused:
        await apply_action(call, image="slow", action="extend1")
    assert 'get_task("slow")' in refused.value.next_step
    with pytest.raises(InvalidInput, match="failed and has no clips") as refused:
        await apply_action(call, image="broken", action="extend1")
    assert "animate" in refused.value.next_step
    with pytest.raises(UnknownReference):
        await apply_action(call, image="no-such-video", action="extend1")
    assert len(sent(fresh_sim)) == submitted
