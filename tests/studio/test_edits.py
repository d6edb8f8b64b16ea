"""edit_image through the studio: an edit of any picture (an image by name, an https URL), wholly or in a
region made into a mask at the picture's size; its four results, images of their own stored with it in
one step; what upstream offers on them (nothing), and what is refused before anything is sent. Against
the simulator over loopback (its /midjourney/edits), with no MCP in the way."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from conftest import TOKEN, settings_for
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from support import ThreadedApp, imagine_requests, submitted

from mj_mcp.core import masks
from mj_mcp.core.kinds import Kind
from mj_mcp.errors import ActionNotAllowed, InvalidInput
from mj_mcp.studio import Call, Studio
from mj_mcp.studio.action import apply_action
from mj_mcp.studio.blend import blend
from mj_mcp.studio.edit import edit_image
from mj_mcp.studio.export import export_image
from mj_mcp.studio.get import get_task
from mj_mcp.studio.imagine import imagine
from mj_mcp.studio.inpaint import inpaint_region

pytestmark = pytest.mark.anyio

EDITS = "/midjourney/edits"
TOP_LEFT = [masks.Shape(shape="rect", box=[0.0, 0.0, 0.5, 0.5])]


def edits_sent(sim) -> list[dict]:
    return [r["body"] for r in sim.state.requests(EDITS)]


def mask_of(body: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(body["mask"])))


def white(mask: Image.Image) -> float:
    hist = mask.convert("L").histogram()
    return sum(hist[128:]) / (mask.width * mask.height)


async def test_an_edit_makes_four_named_images_stored_with_it(call, fresh_sim):
    grid = await imagine(call, prompt="a red fox in snow")
    edit = await edit_image(call, image="fox-snow", prompt="a fox wearing a red hat")
    assert (edit.name, edit.kind, edit.status, edit.parent, edit.action) == (
        "fox-snow.edit",
        Kind.EDITS,
        "completed",
        "fox-snow",
        "edit",
    )
    assert len(edit.sub_images) == 4 and edit.actions == [] and len(edit.media) == 4
    # what left: the grid's full-size picture, the prompt, the four results one by one, no mask
    assert edits_sent(fresh_sim) == [
        {
            "action": "generate",
            "image_url": grid.raw_image_url,
            "prompt": "a fox wearing a red hat",
            "mode": "fast",
            "split_images": True,
        }
    ]
    results = await call.workspace.results(edit)
    assert [r.name for r in results] == [f"fox-snow.edit.{n}" for n in range(1, 5)]
    for result, url in zip(results, edit.sub_images, strict=True):
        found = await call.workspace.resolve(result.name)
        assert (found.kind, found.status, found.parent, found.parent_id) == (
            Kind.EDITED,
            "completed",
            edit.name,
            edit.id,
        )
        assert found.media[0].url == url and found.is_image
        # upstream's task is the edit's: its id finds the edit, not a result
        assert found.task_id is None and found.image_id is None
    assert (await get_task(call, ref=edit.task_id)).name == edit.name
    family = {r.name for r in await call.workspace.lineage("fox-snow")}
    assert {"fox-snow", edit.name, *(r.name for r in results)} <= family


async def test_a_region_becomes_a_mask_at_the_pictures_size(call, fresh_sim):
    await imagine(call, prompt="a cat on a sofa", aspect_ratio="16:9")
    single = await apply_action(call, image="cat-sofa", action="upscale1")
    await edit_image(call, image=single.name, prompt="a dog", region=TOP_LEFT)
    mask = mask_of(edits_sent(fresh_sim)[-1])
    assert mask.size == (single.raw_width, single.raw_height) == (1456, 816)
    assert white(mask) == pytest.approx(0.25, abs=0.01)
    # an edit's result: no size upstream said, so the picture itself tells it (downloaded, then cached)
    edit = await edit_image(call, image=single.name, prompt="a dog")
    first = (await call.workspace.results(edit))[0]
    assert first.raw_width is None
    picture = Image.open(io.BytesIO((await call.studio.media.original(first))[0]))
    uploaded = "data:image/png;base64," + base64.b64encode(png(picture.width // 2, picture.height // 2)).decode()
    again = await edit_image(call, image=first.name, prompt="a blue dog", mask=uploaded)
    sent = edits_sent(fresh_sim)[-1]
    assert sent["image_url"] == first.media[0].url and mask_of(sent).size == picture.size
    assert again.parent == first.name and again.name == f"{first.name}.edit"


def png(width: int, height: int) -> bytes:
    """A mask: its left half white."""
    img = Image.new("L", (width, height))
    img.paste(255, (0, 0, width // 2, height))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_the_results_are_pictures_anywhere_one_is_taken(call, fresh_sim):
    await imagine(call, prompt="a lighthouse in a storm")
    edit = await edit_image(call, image="lighthouse-storm", prompt="a lighthouse at noon")
    one, two, three, _ = await call.workspace.results(edit)
    prompted = await imagine(call, prompt="a painting of it", images=[one.name])
    assert imagine_requests(fresh_sim)[-1]["body"]["prompt"].startswith(f"{one.media[0].url} ")
    assert prompted.sources == [one.name]
    mixed = await blend(call, images=[two.name, three.name])
    assert mixed.status == "completed" and mixed.sources == [two.name, three.name]
    assert imagine_requests(fresh_sim)[-1]["body"]["prompt"].split()[:2] == [two.media[0].url, three.media[0].url]
    repainted = await edit_image(call, image=three.name, prompt="a lighthouse at night")
    assert repainted.status == "completed" and edits_sent(fresh_sim)[-1]["image_url"] == three.media[0].url
    exported = await export_image(call, image=one.name, path="edit-result.png")
    assert exported.mime == "image/png" and exported.size > 0


async def test_an_edits_preview_is_its_results_as_a_grid_or_a_line_saying_why_not(fresh_sim):
    async with Studio.open(settings_for(fresh_sim, preview_px=256)) as studio:
        call = studio.call()
        await imagine(call, prompt="a windmill in a field")
        edit = await edit_image(call, image="windmill-field", prompt="a windmill at night")
        shown = await studio.preview(edit)
        sheet = Image.open(io.BytesIO(shown.jpeg or b""))
        assert sheet.size == (256, 256) and shown.note is None and shown.mime == "image/png"
        # each quadrant is its result (the labels aside): the sheet is not one picture scaled
        first = Image.open(io.BytesIO((await studio.media.original((await call.workspace.results(edit))[0]))[0]))
        quadrant = sheet.crop((64, 64, 128, 128)).convert("L").resize((8, 8))
        expected = first.convert("L").resize((128, 128)).crop((64, 64, 128, 128)).resize((8, 8))
        assert max(abs(a - b) for a, b in zip(quadrant.getdata(), expected.getdata(), strict=True)) < 48
        # a result that can no longer be downloaded: one line, not a failed call
        other = await edit_image(call, image="windmill-field", prompt="a windmill in snow")
        fresh_sim.state.configure(serve_images=False)
        shown = await studio.preview(other)
        assert shown.jpeg is None and shown.note and shown.note.startswith("preview unavailable")


async def test_an_edit_started_elsewhere_is_adopted_by_its_task_id_with_its_results(call, fresh_sim):
    grid = await imagine(call, prompt="a brass compass")
    body = {"image_url": grid.raw_image_url, "prompt": "a silver compass", "split_images": True}
    reply = httpx.post(
        f"{fresh_sim.base_url}{EDITS}", json=body, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
    ).json()
    edit = await get_task(call, ref=reply["task_id"], wait_seconds=10)
    assert (edit.kind, edit.status, edit.action, edit.name) == (Kind.EDITS, "completed", "edit", "silver-compass")
    made = await call.workspace.results(edit)
    assert [r.name for r in made] == [f"silver-compass.{n}" for n in range(1, 5)]
    assert [r.media[0].url for r in made] == edit.sub_images


async def test_upstream_offers_nothing_on_an_edit_and_the_refusal_says_what_to_do(call, fresh_sim):
    await imagine(call, prompt="a paper boat")
    edit = await edit_image(call, image="paper-boat", prompt="a golden boat")
    first = f"{edit.name}.1"
    imagined, edited = len(imagine_requests(fresh_sim)), len(edits_sent(fresh_sim))
    with pytest.raises(ActionNotAllowed) as refused:
        await apply_action(call, image=first, action="upscale1")
    assert "offers no action on" in str(refused.value) and f'edit_image(image="{first}"' in refused.value.next_step
    with pytest.raises(ActionNotAllowed):
        await inpaint_region(call, image=first, region=TOP_LEFT)
    # the edit itself is four pictures: each refusal names them
    for attempt in (
        apply_action(call, image=edit.name, action="upscale1"),
        imagine(call, prompt="more", images=[edit.name]),
        edit_image(call, image=edit.name, prompt="again"),
        export_image(call, image=edit.name, path="all-four.png"),
    ):
        with pytest.raises(InvalidInput) as refused:
            await attempt
        assert f"{edit.name} is an edit" in str(refused.value) and first in refused.value.next_step
    assert (len(imagine_requests(fresh_sim)), len(edits_sent(fresh_sim))) == (imagined, edited)


async def test_refused_before_anything_is_sent(call, fresh_sim):
    fresh_sim.state.inject("/midjourney/imagine", "task_fail", times=1, at_progress=35, code="api_error")
    await imagine(call, prompt="a quiet lake")
    await imagine(call, prompt="a green hill")
    fresh_sim.state.configure(time_scale=1.0, start_delay_s=30.0)
    running = await imagine(call, prompt="a slow glacier", wait_seconds=0)
    await submitted(fresh_sim, "a slow glacier")
    cases = [
        ({"image": "http://example.com/a.png", "prompt": "x"}, "is not https"),
        ({"image": "green-hill", "prompt": "   "}, "needs a prompt"),
        ({"image": "green-hill", "prompt": "a hill -c 5"}, "did you mean --c?"),
        ({"image": "quiet-lake", "prompt": "a lake"}, "failed and has no image"),
        ({"image": running.name, "prompt": "ice"}, "still generating"),
        ({"image": "green-hill", "prompt": "x", "region": TOP_LEFT, "mask": "AAAA"}, "one of region and mask"),
        ({"image": "green-hill", "prompt": "x", "mask": "not base64 at all!"}, "not a base64 image"),
        (
            {"image": "green-hill", "prompt": "x", "region": [masks.Shape(shape="rect", box=[0.5, 0.5, 0.5, 0.9])]},
            "empty",
        ),
        ({"image": "no-such-hill", "prompt": "x"}, "no image or task"),
    ]
    for args, expected in cases:
        with pytest.raises(InvalidInput) as refused:
            await edit_image(call, **args)
        assert expected in str(refused.value) and "Nothing was sent upstream." in str(refused.value), args
    assert edits_sent(fresh_sim) == []


@pytest.fixture
async def embedded(sim):
    """A studio with an embedded simulator of its own, as with no token: its pictures have https URLs."""
    async with Studio.open(settings_for(sim, embed_sim=True, sim_time_scale=0.0)) as studio:
        yield studio.call()


async def test_a_picture_given_by_url_is_edited_in_a_region_its_header_sizing_the_mask(embedded: Call):
    grid = await imagine(embedded, prompt="a harbour at dawn", aspect_ratio="2:3")
    url = grid.raw_image_url
    assert url and url.startswith("https://")
    edit = await edit_image(embedded, image=url, prompt="a harbour at dusk", region=TOP_LEFT)
    assert (edit.status, edit.parent, edit.sources, edit.name) == ("completed", None, [url], "harbour-dusk")
    assert [r.name for r in await embedded.workspace.results(edit)] == [f"harbour-dusk.{n}" for n in range(1, 5)]
    # a URL that serves no picture has no size: a region is refused, the whole picture is not
    not_a_picture = url.rsplit("/", 1)[0] + "/nothing-here.png"
    with pytest.raises(InvalidInput, match="could not be read"):
        await edit_image(embedded, image=not_a_picture, prompt="x", region=TOP_LEFT)


async def test_a_urls_size_comes_from_its_first_bytes_only():
    """A server that ignores the Range header is read no further than the header's bytes."""
    sent: list[int] = []
    ranges: list[str | None] = []
    header = png(640, 360)

    async def big_picture(request: Request) -> StreamingResponse:
        ranges.append(request.headers.get("range"))

        async def body():
            yield header
            for _ in range(256):
                # Once the client is gone, what the server would write goes nowhere: stop counting.
                if await request.is_disconnected():
                    return
                sent.append(1)
                yield b"\0" * (256 << 10)

        return StreamingResponse(body(), media_type="image/png")

    with ThreadedApp(Starlette(routes=[Route("/big.png", big_picture)])) as app:
        async with Studio.open(settings_for(app)) as own:
            size = await own.media.size_at(f"{app.base_url}/big.png")
    assert size == (640, 360) and ranges == ["bytes=0-262143"]
    # 64 MiB would follow; what left the server before the connection closed is far less
    assert len(sent) < 256
