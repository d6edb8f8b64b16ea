"""Videos through a real MCP client, once in each protocol era: animate answers with a poster (a picture,
never video bytes), a text that says what each clip is and a resource_link per clip; each clip reads as
``video/mp4`` whose bytes are an MP4 that decodes; extend, export, resources/list, and the refusals as
tool errors. (The rules themselves are the studio tier's: tests/studio/test_videos.py.)"""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path

import av
import pytest
from conftest import settings_for
from PIL import Image
from support import call

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["auto", "legacy"])
async def showing(request, fresh_sim):
    """A client of a server that makes previews (the model's thumbnails and posters), in both eras."""
    from mcp import Client

    from mj_mcp.server import build_server

    async with Client(build_server(settings_for(fresh_sim, preview_px=512)), mode=request.param) as c:
        yield c


def frames_of(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), format="mp4") as container:
        return list(container.decode(video=0))


async def test_animate_shows_a_poster_and_links_each_clip(showing, fresh_sim):
    client = showing
    await call(client, "imagine", prompt="a red fox in snow")
    await call(client, "apply_action", image="fox-snow", action="upscale2")
    result, sc, text, events = await call(client, "animate", image="fox-snow.u2", prompt="the fox runs", mode="turbo")
    assert not result.is_error, text
    assert (sc["name"], sc["status"], sc["kind"], sc["parent"]) == (
        "fox-snow.u2.vid",
        "completed",
        "videos",
        "fox-snow.u2",
    )
    clips = [f"mj://videos/fox-snow.u2.vid/{n}" for n in range(1, 5)]
    assert sc["clips"] == clips and len(sc["videos"]) == 4 and sc["video_id"] and sc["uri"] is None
    assert events and events[-1][0] == 100
    # the text: what the clips are, where, what next; no URL or id
    assert text.startswith("[simulated] fox-snow.u2.vid is ready: 4 video clips starting on fox-snow.u2 (")
    assert "each)" in text and "1-4 from top-left" in text and 'action="extendN"' in text and "clip=N" in text
    assert sc["video_id"] not in text and "http" not in text
    # one picture (the poster), one link per clip, and nothing else: no video bytes reach the model
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "image", *["resource_link"] * 4]
    poster = result.content[1]
    assert poster.mime_type == "image/jpeg" and max(Image.open(io.BytesIO(base64.b64decode(poster.data))).size) == 512
    links = result.content[2:]
    assert [(link.uri, link.mime_type) for link in links] == [(uri, "video/mp4") for uri in clips]
    # each clip reads as an MP4 that decodes, at the video's size
    for uri in (clips[0], clips[3]):
        read = await client.read_resource(uri)
        [content] = read.contents
        assert content.mime_type == "video/mp4"
        data = base64.b64decode(content.blob)
        assert data[4:8] == b"ftyp"
        frames = frames_of(data)
        assert len(frames) > 1 and (frames[0].width, frames[0].height) == (sc["width"], sc["height"])
    listed = (await client.list_resources()).resources
    assert {r.uri: r.mime_type for r in listed if str(r.uri).startswith("mj://videos/")} == dict.fromkeys(
        clips, "video/mp4"
    )
    # a clip that is not one, and the video read as an image, are errors that say so
    with pytest.raises(Exception, match="1-4"):
        await client.read_resource("mj://videos/fox-snow.u2.vid/5")
    with pytest.raises(Exception, match="is a video"):
        await client.read_resource("mj://images/fox-snow.u2.vid")


async def test_extend_export_and_refusals_of_a_video(showing, fresh_sim):
    client = showing
    await call(client, "imagine", prompt="a paper boat on a pond")
    result, video, text, _ = await call(
        client, "animate", image="https://cdn.example/boat.png", prompt="it drifts", resolution="480p"
    )
    assert not result.is_error and video["name"] == "drifts" and video["sources"] == ["https://cdn.example/boat.png"]
    result, longer, text, _ = await call(client, "apply_action", image="drifts", action="extend3")
    assert not result.is_error and longer["name"] == "drifts.e3" and longer["kind"] == "videos", text
    assert "each clip 3 of drifts made longer" in text
    path = f"clips/{uuid.uuid4().hex}"
    result, exported, text, _ = await call(client, "export_image", image="drifts.e3", clip=2, path=path)
    assert not result.is_error and exported["mime"] == "video/mp4" and exported["path"].endswith(path + ".mp4"), text
    assert len(frames_of(Path(exported["path"]).read_bytes())) > 1
    # get_task shows a finished video the same way
    result, _, text, _ = await call(client, "get_task", ref="drifts.e3")
    assert [b.type for b in result.content] == ["text", "image", *["resource_link"] * 4] and "4 video clips" in text
    # refusals are tool errors with the next step; relax passes the schema to be refused in words
    for tool, args, said in (
        (
            "animate",
            {"image": "drifts", "prompt": "go", "mode": "relax"},
            'video has no relax mode. Next: Use mode="fast"',
        ),
        ("animate", {"image": "drifts", "prompt": "go"}, "drifts is a video, not an image"),
        ("apply_action", {"image": "drifts", "action": "upscale1"}, "Use one of: extend1, extend2, extend3, extend4"),
        ("apply_action", {"image": "paper-pond", "action": "extend1"}, "extends a video's clip"),
        ("export_image", {"image": "drifts", "path": "x.mp4"}, "clip=1"),
    ):
        result, sc, text, _ = await call(client, tool, **args)
        assert result.is_error and said in text, (tool, text)
    assert len(fresh_sim.state.requests("/midjourney/videos")) == 2
