"""Every tool's happy path and local refusals, through the SDK client in both protocol eras,
against the simulator over loopback HTTP."""

from __future__ import annotations

import base64
import io
import itertools

import anyio
import pytest
from PIL import Image

from mj_mcp.core import actions
from mj_mcp.core.actions import Kind
from support import PATIENCE, call, imagine_requests

pytestmark = pytest.mark.anyio


async def test_imagine_makes_a_named_grid_with_increasing_progress(client, fresh_sim):
    # Upstream's steps 0.6 s apart: a report shows the latest figure when the call's wait wakes, so steps
    # 30 ms apart (the suite's pace) could all pass between two wakes of a busy machine's loop.
    fresh_sim.state.configure(time_scale=0.2)
    result, sc, text, events = await call(client, "imagine", prompt="Lamborghini speeds inside a volcano")
    assert not result.is_error, text
    assert sc["name"] == "lamborghini-volcano"
    assert sc["status"] == "completed" and sc["progress"] == 100
    assert sc["kind"] == "grid"
    assert sc["actions"] == list(actions.ACTIONS_AFTER[Kind.GRID])
    assert (sc["width"], sc["height"], sc["raw_width"], sc["raw_height"]) == (1024, 1024, 2048, 2048)
    assert sc["image_id"].isdigit() and len(sc["task_id"]) == 36
    assert sc["simulated"] is True and text.startswith("[simulated] ")
    assert "lamborghini-volcano" in text and "upscale" in text and sc["image_id"] not in text
    # progress: strictly increasing, out of 100, ending at 100, with upstream's steps in between
    values = [p for p, _, _ in events]
    assert len(values) >= 3 and values == sorted(set(values)) and values[-1] == 100
    assert all(total == 100 for _, total, _ in events)
    said = [m.partition(": ")[2] for _, _, m in events if m and ": generating " in m]
    assert said and set(said) <= {"generating 35%", "generating 75%"}, events
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body == {"action": "generate", "prompt": "Lamborghini speeds inside a volcano", "mode": "fast"}


async def test_actions_chain_by_name_and_names_show_lineage(client, fresh_sim):
    _, grid, _, _ = await call(client, "imagine", prompt="a red fox in snow")
    assert grid["name"] == "fox-snow"
    result, single, text, _ = await call(client, "apply_action", image="fox-snow", action="upscale2")
    assert not result.is_error, text
    assert single["name"] == "fox-snow.u2" and single["parent"] == "fox-snow" and single["action"] == "upscale2"
    assert single["kind"] == "single" and single["actions"] == list(actions.ACTIONS_AFTER[Kind.SINGLE])
    assert (single["raw_width"], single["raw_height"]) == (1024, 1024)
    _, zoomed, _, _ = await call(client, "apply_action", image="fox-snow.u2", action="zoom_out_2x")
    assert zoomed["name"] == "fox-snow.u2.z2" and zoomed["kind"] == "grid"
    # references: an image_id or a task_id work as well as a name
    _, varied, _, _ = await call(client, "apply_action", image=grid["image_id"], action="variation3")
    assert varied["name"] == "fox-snow.v3"
    _, r1, _, _ = await call(client, "apply_action", image=grid["task_id"], action="reroll")
    _, r2, _, _ = await call(client, "apply_action", image="fox-snow", action="reroll")
    assert (r1["name"], r2["name"]) == ("fox-snow.r", "fox-snow.r-2")
    sent = imagine_requests(fresh_sim)[1]["body"]
    assert sent == {"action": "upscale2", "image_id": grid["image_id"], "mode": "fast"}


async def test_an_action_the_image_does_not_offer_is_refused_without_an_upstream_request(client, fresh_sim):
    await call(client, "imagine", prompt="a lighthouse at dusk")
    before = len(imagine_requests(fresh_sim))
    result, sc, text, _ = await call(client, "apply_action", image="lighthouse-dusk", action="zoom_out_2x")
    assert result.is_error and sc is None
    assert "zoom_out_2x is not available on lighthouse-dusk" in text and "upscale1" in text
    assert len(imagine_requests(fresh_sim)) == before


async def test_unknown_reference_lists_the_closest_names(client, fresh_sim):
    await call(client, "imagine", prompt="a lighthouse at dusk")
    result, _, text, _ = await call(client, "apply_action", image="lighthous-dusk", action="upscale1")
    assert result.is_error and "no image or task 'lighthous-dusk'" in text and "lighthouse-dusk" in text
    result, _, text, _ = await call(client, "get_task", ref="nothing-like-it")
    assert result.is_error and "no image or task 'nothing-like-it'" in text and "lighthouse-dusk" in text


async def test_caller_names_are_used_as_is_and_never_overwritten(client, fresh_sim):
    _, sc, _, _ = await call(client, "imagine", prompt="a castle", name="hero-shot")
    assert sc["name"] == "hero-shot"
    before = len(imagine_requests(fresh_sim))
    result, _, text, _ = await call(client, "imagine", prompt="another castle", name="hero-shot")
    assert result.is_error and "taken" in text
    result, _, text, _ = await call(client, "imagine", prompt="a castle", name="Bad Name!")
    assert result.is_error and "not allowed" in text
    assert len(imagine_requests(fresh_sim)) == before


async def test_options_and_prompt_flags_reach_upstream_and_shape_the_grid(client, fresh_sim):
    flags = "--v 6.1 --s 250 --c 10 --q .5 --seed 42 --no boats --style raw --tile"
    result, sc, text, _ = await call(client, "imagine", prompt=f"a quiet harbour {flags}", aspect_ratio="16:9",
                                     mode="turbo", translation=True)
    assert not result.is_error, text
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body["prompt"] == f"a quiet harbour {flags} --ar 16:9"
    assert body["mode"] == "turbo" and body["translation"] is True
    assert (sc["width"], sc["height"]) == (1456, 816)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"prompt": "a cat --ar 1:1", "aspect_ratio": "16:9"}, "--ar is both in the prompt"),
        ({"prompt": "a cat -c 5"}, "did you mean --c?"),
        ({"prompt": "a cat \u2014iw 2"}, "did you mean --iw?"),
        ({"prompt": "a cat --chaoss 5"}, "unknown flag '--chaoss' (did you mean --chaos?)"),
        ({"prompt": "a cat --turbo"}, "use mode='turbo'"),
        ({"prompt": "a cat", "images": ["http://example.com/a.png"]}, "is not https"),
    ],
)
async def test_bad_prompts_are_refused_locally(client, fresh_sim, args, expected):
    result, _, text, _ = await call(client, "imagine", **args)
    assert result.is_error and expected in text
    assert "Nothing was sent upstream." in text
    assert imagine_requests(fresh_sim) == []


async def test_image_prompts_put_urls_first(client, fresh_sim):
    _, grid, _, _ = await call(client, "imagine", prompt="a teddy bear")
    result, sc, text, _ = await call(client, "imagine", prompt="a bear in a forest",
                                     images=["teddy-bear", "https://example.com/forest.png"])
    assert not result.is_error, text
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body["prompt"] == f"{grid['raw_image_url']} https://example.com/forest.png a bear in a forest"
    assert sc["sources"] == ["teddy-bear", "https://example.com/forest.png"]
    result, _, text, _ = await call(client, "imagine", prompt="x", images=["teddy-bear"] * 3)
    assert not result.is_error, text
    result, _, text, _ = await call(client, "imagine", prompt="https://e.com/1.png https://e.com/2.png x",
                                    images=["teddy-bear"] * 4)
    assert result.is_error and "at most 5" in text


async def test_blend_mixes_two_results_into_a_grid(client, fresh_sim):
    _, a, _, _ = await call(client, "imagine", prompt="a teddy bear")
    _, b, _, _ = await call(client, "imagine", prompt="a chainsaw")
    result, sc, text, events = await call(client, "blend", images=["teddy-bear", "chainsaw"], aspect_ratio="1:1")
    assert not result.is_error, text
    assert sc["name"] == "blend-teddy-bear-chainsaw" and sc["kind"] == "grid" and sc["sources"] == ["teddy-bear", "chainsaw"]
    body = imagine_requests(fresh_sim)[-1]["body"]
    assert body["prompt"] == f"{a['raw_image_url']} {b['raw_image_url']} --ar 1:1"
    assert events and events[-1][0] == 100
    _, named, _, _ = await call(client, "blend", images=["teddy-bear", "chainsaw"], prompt="the bear holds the chainsaw")
    assert named["name"] == "holds-chainsaw"
    before = len(imagine_requests(fresh_sim))
    result, _, text, _ = await call(client, "blend", images=["teddy-bear"])
    assert result.is_error
    result, _, text, _ = await call(client, "blend", images=["teddy-bear"] * 6)
    assert result.is_error
    assert len(imagine_requests(fresh_sim)) == before


def _sent_mask(sim) -> Image.Image:
    body = imagine_requests(sim)[-1]["body"]
    assert body["action"] == "variation_region" and not body["mask"].startswith("data:")
    img = Image.open(io.BytesIO(base64.b64decode(body["mask"])))
    assert img.format == "JPEG" and img.mode == "L"
    return img


async def test_inpaint_region_sends_an_exact_mask_of_the_raw_size(client, fresh_sim):
    await call(client, "imagine", prompt="a cat on a sofa")
    _, single, _, _ = await call(client, "apply_action", image="cat-sofa", action="upscale1")
    result, sc, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", prompt="a dog",
                                     region={"shape": "rect", "box": [0.25, 0.5, 0.75, 1.0]})
    assert not result.is_error, text
    assert sc["name"] == "cat-sofa.u1.region" and sc["parent"] == "cat-sofa.u1" and sc["action"] == "variation_region"
    mask = _sent_mask(fresh_sim)
    w, h = single["raw_width"], single["raw_height"]
    assert mask.size == (w, h)
    binary = mask.point(lambda v: 255 if v >= 128 else 0)
    assert binary.getbbox() == (w // 4, h // 2, 3 * w // 4, h)
    assert binary.histogram()[255] == (w // 2) * (h // 2)
    assert imagine_requests(fresh_sim)[-1]["body"]["prompt"] == "a dog"


async def test_inpaint_with_an_uploaded_mask_resizes_it(client, fresh_sim):
    await call(client, "imagine", prompt="a cat on a sofa")
    await call(client, "apply_action", image="cat-sofa", action="upscale1")
    upload = Image.new("L", (64, 64), 0)
    upload.paste(255, (0, 0, 32, 64))  # left half white
    buf = io.BytesIO()
    upload.save(buf, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", mask=data_url)
    assert not result.is_error, text
    mask = _sent_mask(fresh_sim).point(lambda v: 255 if v >= 128 else 0)
    assert mask.size == (1024, 1024) and mask.getbbox() == (0, 0, 512, 1024)


async def test_inpaint_refusals_send_nothing(client, fresh_sim):
    await call(client, "imagine", prompt="a cat on a sofa")
    await call(client, "apply_action", image="cat-sofa", action="upscale1")
    before = len(imagine_requests(fresh_sim))
    rect = {"shape": "rect", "box": [0.1, 0.1, 0.2, 0.2]}
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa", region=rect)
    assert result.is_error and "only a single image" in text and "upscale1" in text
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1")
    assert result.is_error and "exactly one of region and mask" in text
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", region=rect, mask="AAAA")
    assert result.is_error and "exactly one" in text
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1", mask="not base64 at all!")
    assert result.is_error and "not a base64 image" in text
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1",
                                    region={"shape": "rect", "box": [0.1, 0.1, 1.5, 0.2]})
    assert result.is_error
    result, _, text, _ = await call(client, "inpaint_region", image="cat-sofa.u1",
                                    region={"shape": "polygon", "points": [[0.1, 0.1], [0.2, 0.2]]})
    assert result.is_error
    assert len(imagine_requests(fresh_sim)) == before


async def test_get_task_by_name_id_and_an_unregistered_task_id(client, fresh_sim):
    _, grid, _, _ = await call(client, "imagine", prompt="a paper boat")
    for ref in ("paper-boat", grid["image_id"], grid["task_id"]):
        result, sc, text, _ = await call(client, "get_task", ref=ref)
        assert not result.is_error and sc["name"] == "paper-boat" and sc["status"] == "completed"
        assert "is ready" in text and "get_task" not in text
    # A task started elsewhere (say, in an earlier session) is found upstream and registered.
    import httpx

    from conftest import TOKEN

    reply = httpx.post(f"{fresh_sim.base_url}/midjourney/imagine", json={"prompt": "an origami crane", "async": True},
                       headers={"authorization": f"Bearer {TOKEN}", "x-fake-time-scale": "0.3"},  # 3.3 s: still
                       timeout=PATIENCE)  # running when get_task asks, on a busy machine too
    task_id = reply.json()["task_id"]
    result, sc, text, _ = await call(client, "get_task", ref=task_id)
    assert not result.is_error, text
    assert sc["task_id"] == task_id and sc["name"] == "origami-crane"
    assert sc["status"] == "running" and "get_task" in text and "wait_seconds" in text
    # waiting for it follows the task to the end, with progress
    result, sc, text, events = await call(client, "get_task", ref="origami-crane", wait_seconds=PATIENCE)
    assert sc["status"] == "completed" and sc["kind"] == "grid" and sc["image_id"]
    assert "is ready" in text and "get_task" not in text
    assert events and events[-1][0] == 100
    result, _, text, _ = await call(client, "get_task", ref="00000000-0000-4000-8000-000000000000")
    assert result.is_error and "no image or task '00000000-0000-4000-8000-000000000000'" in text


async def test_heartbeats_keep_progress_increasing_while_upstream_is_silent(client, fresh_sim):
    # No byte for 1.5 s: some 30 heartbeats are due (heartbeat_s is 0.05 in these tests), four are asked
    # for (a busy machine wakes the loop late, and skips some).
    fresh_sim.state.inject("/midjourney/imagine", "slow", times=1, delay=1.5)
    result, sc, text, events = await call(client, "imagine", prompt="a slow snail")
    assert not result.is_error, text
    values = [p for p, _, _ in events]
    assert values == sorted(set(values)) and values[-1] == 100
    # A heartbeat never claims progress upstream has not made: it stays within a point of upstream's
    # last figure (below 1% during the silence; a busy machine may also beat between later lines).
    said = 0.0
    for p, _, m in events:
        if "waiting for upstream" in m:
            assert p < said + 1, (p, said, events)
        else:
            said = p
    silence = list(itertools.takewhile(lambda e: "waiting for upstream" in e[2], events))
    assert len(silence) >= 4 and max(p for p, _, _ in silence) < 1


async def test_a_reused_name_never_becomes_its_own_ancestor(fresh_sim):
    """Evicting "x", then naming a child of "x.u1" "x", made the parent links a loop that
    list_images(lineage_of=...) walked forever on the event loop. Lineage follows record ids now."""
    from mcp import Client

    from conftest import settings_for
    from mj_mcp.server import build_server

    async with Client(build_server(settings_for(fresh_sim, max_images=10))) as c:
        await call(c, "imagine", prompt="a lone tree", name="x")
        for i in range(8):
            await call(c, "imagine", prompt=f"filler number {i}", name=f"f{i}")
        await call(c, "apply_action", image="x", action="upscale1")
        await call(c, "imagine", prompt="filler number 8", name="f8")  # "x", the oldest, is forgotten
        listed = (await call(c, "list_images", limit=50))[1]
        assert "x" not in {i["name"] for i in listed["images"]} and listed["total"] == 10
        result, child, text, _ = await call(c, "apply_action", image="x.u1", action="upscale_2x", name="x")
        assert not result.is_error, text
        with anyio.fail_after(PATIENCE):  # a loop in the lineage would never answer
            result, family, text, _ = await call(c, "list_images", lineage_of="x")
        assert not result.is_error, text
        assert [i["name"] for i in family["images"]] == ["x", "x.u1"]
        with anyio.fail_after(PATIENCE):
            result, family, _, _ = await call(c, "list_images", lineage_of="x.u1")
        assert [i["name"] for i in family["images"]] == ["x", "x.u1"]
