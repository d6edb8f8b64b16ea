"""Generating through the studio: names, lineage, what reaches upstream, progress; against the
simulator over loopback, with no MCP in the way."""

from __future__ import annotations

import base64
import io
import itertools
import re

import anyio
import httpx
import pytest
from conftest import TOKEN, settings_for
from PIL import Image
from support import PATIENCE, imagine_requests

from mj_mcp.core import actions, masks
from mj_mcp.core.kinds import Kind
from mj_mcp.studio import Studio
from mj_mcp.studio.action import apply_action
from mj_mcp.studio.blend import blend
from mj_mcp.studio.get import get_task
from mj_mcp.studio.imagine import imagine
from mj_mcp.studio.inpaint import inpaint_region
from mj_mcp.studio.listing import list_images

pytestmark = pytest.mark.anyio


async def test_imagine_makes_a_named_grid_with_increasing_progress(call, progress, fresh_sim):
    # Upstream's steps 0.6 s apart: a report shows the latest figure when the wait wakes, and steps 30 ms
    # apart (the suite's pace) could all pass, the last included, between two wakes of a busy loop.
    fresh_sim.state.configure(time_scale=0.2)
    grid = await imagine(call, prompt="Lamborghini speeds inside a volcano")
    assert grid.name == "lamborghini-volcano" and grid.status == "completed" and grid.progress == 100
    assert grid.kind is Kind.GRID and grid.actions == list(actions.ACTIONS_AFTER[Kind.GRID])
    assert (grid.width, grid.height, grid.raw_width, grid.raw_height) == (1024, 1024, 2048, 2048)
    assert grid.image_id and grid.image_id.isdigit() and grid.task_id and len(grid.task_id) == 36
    # progress: strictly increasing, out of 100, ending at 100, with upstream's steps in between
    assert len(progress.values) >= 3 and progress.values == sorted(set(progress.values)) and progress.values[-1] == 100
    # upstream's steps (35, 75) are reported as they come; two close together may reach a busy wait as one
    assert any(re.fullmatch(r"generating (35|75)%", m) for _, _, m in progress.events)
    assert {name for name, _, _ in progress.events} == {grid.name}
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body == {"action": "generate", "prompt": "Lamborghini speeds inside a volcano", "mode": "fast"}


async def test_actions_chain_by_name_and_names_show_lineage(call, fresh_sim):
    grid = await imagine(call, prompt="a red fox in snow")
    assert grid.name == "fox-snow"
    single = await apply_action(call, image="fox-snow", action="upscale2")
    assert (single.name, single.parent, single.action, single.kind) == (
        "fox-snow.u2",
        "fox-snow",
        "upscale2",
        Kind.SINGLE,
    )
    assert single.actions == list(actions.ACTIONS_AFTER[Kind.SINGLE]) and (single.raw_width, single.raw_height) == (
        1024,
        1024,
    )
    zoomed = await apply_action(call, image="fox-snow.u2", action="zoom_out_2x")
    assert zoomed.name == "fox-snow.u2.z2" and zoomed.kind is Kind.GRID
    # references: an image_id or a task_id work as well as a name
    assert grid.image_id and grid.task_id
    assert (await apply_action(call, image=grid.image_id, action="variation3")).name == "fox-snow.v3"
    r1 = await apply_action(call, image=grid.task_id, action="reroll")
    r2 = await apply_action(call, image="fox-snow", action="reroll")
    assert (r1.name, r2.name) == ("fox-snow.r", "fox-snow.r-2")
    assert imagine_requests(fresh_sim)[1]["body"] == {"action": "upscale2", "image_id": grid.image_id, "mode": "fast"}


async def test_caller_names_are_used_as_is(call):
    assert (await imagine(call, prompt="a castle", name="hero-shot")).name == "hero-shot"


async def test_options_and_prompt_flags_reach_upstream_and_shape_the_grid(call, fresh_sim):
    flags = "--v 6.1 --s 250 --c 10 --q .5 --seed 42 --no boats --style raw --tile"
    grid = await imagine(call, prompt=f"a quiet harbour {flags}", aspect_ratio="16:9", mode="turbo", translation=True)
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body["prompt"] == f"a quiet harbour {flags} --ar 16:9"
    assert body["mode"] == "turbo" and body["translation"] is True
    assert (grid.width, grid.height) == (1456, 816)


async def test_image_prompts_put_urls_first(call, fresh_sim):
    bear = await imagine(call, prompt="a teddy bear")
    forest = await imagine(call, prompt="a bear in a forest", images=["teddy-bear", "https://example.com/forest.png"])
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body["prompt"] == f"{bear.raw_image_url} https://example.com/forest.png a bear in a forest"
    assert forest.sources == ["teddy-bear", "https://example.com/forest.png"]
    await imagine(call, prompt="x", images=["teddy-bear"] * 3)


async def test_blend_mixes_two_results_into_a_grid(call, progress, fresh_sim):
    a = await imagine(call, prompt="a teddy bear")
    b = await imagine(call, prompt="a chainsaw")
    mixed = await blend(call, images=["teddy-bear", "chainsaw"], aspect_ratio="1:1")
    assert (mixed.name, mixed.kind, mixed.sources) == (
        "blend-teddy-bear-chainsaw",
        Kind.GRID,
        ["teddy-bear", "chainsaw"],
    )
    assert imagine_requests(fresh_sim)[-1]["body"]["prompt"] == f"{a.raw_image_url} {b.raw_image_url} --ar 1:1"
    assert progress.values[-1] == 100
    named = await blend(call, images=["teddy-bear", "chainsaw"], prompt="the bear holds the chainsaw")
    assert named.name == "holds-chainsaw"


def _sent_mask(sim) -> Image.Image:
    body = imagine_requests(sim)[-1]["body"]
    assert body["action"] == "variation_region" and not body["mask"].startswith("data:")
    img = Image.open(io.BytesIO(base64.b64decode(body["mask"])))
    assert img.format == "JPEG" and img.mode == "L"
    return img


async def test_inpaint_region_sends_an_exact_mask_of_the_raw_size(call, fresh_sim):
    await imagine(call, prompt="a cat on a sofa")
    single = await apply_action(call, image="cat-sofa", action="upscale1")
    region = [masks.Shape(shape="rect", box=[0.25, 0.5, 0.75, 1.0])]
    painted = await inpaint_region(call, image="cat-sofa.u1", prompt="a dog", region=region)
    assert (painted.name, painted.parent, painted.action) == ("cat-sofa.u1.region", "cat-sofa.u1", "variation_region")
    mask = _sent_mask(fresh_sim)
    w, h = single.raw_width, single.raw_height
    assert w and h and mask.size == (w, h)
    binary = mask.point(lambda v: 255 if v >= 128 else 0)
    assert binary.getbbox() == (w // 4, h // 2, 3 * w // 4, h)
    assert binary.histogram()[255] == (w // 2) * (h // 2)
    assert imagine_requests(fresh_sim)[-1]["body"]["prompt"] == "a dog"


async def test_inpaint_with_an_uploaded_mask_resizes_it(call, fresh_sim):
    await imagine(call, prompt="a cat on a sofa")
    await apply_action(call, image="cat-sofa", action="upscale1")
    upload = Image.new("L", (64, 64), 0)
    # left half white
    upload.paste(255, (0, 0, 32, 64))
    buf = io.BytesIO()
    upload.save(buf, format="PNG")
    await inpaint_region(
        call, image="cat-sofa.u1", mask="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    )
    mask = _sent_mask(fresh_sim).point(lambda v: 255 if v >= 128 else 0)
    assert mask.size == (1024, 1024) and mask.getbbox() == (0, 0, 512, 1024)


async def test_get_task_by_name_id_and_an_unregistered_task_id(call, progress, fresh_sim):
    boat = await imagine(call, prompt="a paper boat")
    for ref in ("paper-boat", boat.image_id, boat.task_id):
        assert ref
        found = await get_task(call, ref=ref)
        assert (found.name, found.status) == ("paper-boat", "completed")
    # A task started elsewhere (say, in an earlier session) is found upstream and registered.
    reply = httpx.post(
        f"{fresh_sim.base_url}/midjourney/imagine",
        json={"prompt": "an origami crane", "async": True},
        # 3.3 s: still running when get_task first asks, on a busy machine too
        headers={"authorization": f"Bearer {TOKEN}", "x-fake-time-scale": "0.3"},
        timeout=PATIENCE,
    )
    task_id = reply.json()["task_id"]
    crane = await get_task(call, ref=task_id)
    assert (crane.task_id, crane.name, crane.status) == (task_id, "origami-crane", "running")
    # waiting for it follows the task to the end, with progress
    progress.events.clear()
    crane = await get_task(call, ref="origami-crane", wait_seconds=PATIENCE)
    assert crane.status == "completed" and crane.kind is Kind.GRID and crane.image_id
    assert progress.values and progress.values[-1] == 100


async def test_heartbeats_keep_progress_increasing_while_upstream_is_silent(call, progress, fresh_sim):
    # No byte for 1.5 s: some 30 heartbeats are due (heartbeat_s is 0.05 in these tests), four are asked
    # for (a busy machine wakes the loop late, and skips some).
    fresh_sim.state.inject("/midjourney/imagine", "slow", times=1, delay=1.5)
    await imagine(call, prompt="a slow snail")
    assert progress.values == sorted(set(progress.values)) and progress.values[-1] == 100
    # A heartbeat never claims progress upstream has not made: it stays within a point of upstream's last
    # figure before it (below 1% during the silence; a busy machine may also beat between later lines).
    said = 0.0
    for _, p, m in progress.events:
        if "waiting for upstream" in m:
            assert p < said + 1, (p, said, progress.events)
        else:
            said = p
    silence = list(itertools.takewhile(lambda e: "waiting for upstream" in e[2], progress.events))
    assert len(silence) >= 4 and max(p for _, p, _ in silence) < 1


async def test_a_reused_name_never_becomes_its_own_ancestor(fresh_sim):
    """Evicting "x", then naming a child of "x.u1" "x", made the parent links a loop that
    list_images(lineage_of=...) walked forever on the event loop. Lineage follows record ids now."""
    async with Studio.open(settings_for(fresh_sim, max_images=10)) as studio:
        call = studio.call()
        await imagine(call, prompt="a lone tree", name="x")
        for i in range(8):
            await imagine(call, prompt=f"filler number {i}", name=f"f{i}")
        await apply_action(call, image="x", action="upscale1")
        # "x", the oldest, is forgotten.
        await imagine(call, prompt="filler number 8", name="f8")
        listed = await list_images(call, limit=50)
        assert "x" not in {r.name for r in listed.records} and listed.total == 10
        await apply_action(call, image="x.u1", action="upscale_2x", name="x")
        # a loop in the lineage would never answer
        with anyio.fail_after(PATIENCE):
            family = await list_images(call, lineage_of="x")
        assert [r.name for r in family.records] == ["x", "x.u1"]
        with anyio.fail_after(PATIENCE):
            family = await list_images(call, lineage_of="x.u1")
        assert [r.name for r in family.records] == ["x", "x.u1"]
