"""What is refused locally, before anything is sent or billed: each refusal says what would work, and
the simulator saw no request for it."""

from __future__ import annotations

import pytest
from support import imagine_requests, submitted

from mj_mcp.core import masks
from mj_mcp.errors import ActionNotAllowed, InvalidInput, NameTaken, UnknownReference
from mj_mcp.studio.action import apply_action
from mj_mcp.studio.blend import blend
from mj_mcp.studio.get import get_task
from mj_mcp.studio.imagine import imagine
from mj_mcp.studio.inpaint import inpaint_region

pytestmark = pytest.mark.anyio


async def test_an_action_the_image_does_not_offer_is_refused_with_those_it_does(call, fresh_sim):
    await imagine(call, prompt="a lighthouse at dusk")
    before = len(imagine_requests(fresh_sim))
    with pytest.raises(ActionNotAllowed) as refused:
        await apply_action(call, image="lighthouse-dusk", action="zoom_out_2x")
    assert "zoom_out_2x is not available on lighthouse-dusk" in str(refused.value) and "upscale1" in str(refused.value)
    assert "Nothing was sent upstream." in str(refused.value)
    assert len(imagine_requests(fresh_sim)) == before


async def test_an_unknown_reference_lists_the_closest_names(call):
    await imagine(call, prompt="a lighthouse at dusk")
    with pytest.raises(UnknownReference) as unknown:
        await apply_action(call, image="lighthous-dusk", action="upscale1")
    assert "no image or task 'lighthous-dusk'" in str(unknown.value) and "lighthouse-dusk" in unknown.value.next_step
    with pytest.raises(UnknownReference) as unknown:
        await get_task(call, ref="nothing-like-it")
    assert "lighthouse-dusk" in unknown.value.next_step
    with pytest.raises(UnknownReference):
        await get_task(call, ref="00000000-0000-4000-8000-000000000000")


async def test_a_name_is_never_overwritten_nor_malformed(call, fresh_sim):
    await imagine(call, prompt="a castle", name="hero-shot")
    before = len(imagine_requests(fresh_sim))
    with pytest.raises(NameTaken, match="taken"):
        await imagine(call, prompt="another castle", name="hero-shot")
    with pytest.raises(InvalidInput, match="not allowed"):
        await imagine(call, prompt="a castle", name="Bad Name!")
    assert len(imagine_requests(fresh_sim)) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"prompt": "a cat --ar 1:1", "aspect_ratio": "16:9"}, "--ar is both in the prompt"),
        ({"prompt": "a cat -c 5"}, "did you mean --c?"),
        ({"prompt": "a cat \u2014iw 2"}, "did you mean --iw?"),
        ({"prompt": "a cat --chaoss 5"}, "unknown flag '--chaoss' (did you mean --chaos?)"),
        ({"prompt": "a cat --turbo"}, "use mode='turbo'"),
        ({"prompt": "a cat", "images": ["http://example.com/a.png"]}, "is not https"),
        ({"prompt": "https://e.com/1.png https://e.com/2.png x", "images": ["https://e.com/3.png"] * 4}, "at most 5"),
    ],
)
async def test_bad_prompts_are_refused_locally(call, fresh_sim, args, expected):
    with pytest.raises(InvalidInput) as refused:
        await imagine(call, **args)
    assert expected in str(refused.value) and "Nothing was sent upstream." in str(refused.value)
    assert imagine_requests(fresh_sim) == []


async def test_a_blend_of_one_or_six_images_is_refused(call, fresh_sim):
    await imagine(call, prompt="a teddy bear")
    before = len(imagine_requests(fresh_sim))
    for images in (["teddy-bear"], ["teddy-bear"] * 6):
        with pytest.raises(InvalidInput, match="a blend takes 2-5 images"):
            await blend(call, images=images)
    assert len(imagine_requests(fresh_sim)) == before


async def test_inpaint_refusals_send_nothing(call, fresh_sim):
    await imagine(call, prompt="a cat on a sofa")
    await apply_action(call, image="cat-sofa", action="upscale1")
    before = len(imagine_requests(fresh_sim))
    rect = [masks.Shape(shape="rect", box=[0.1, 0.1, 0.2, 0.2])]
    with pytest.raises(ActionNotAllowed) as refused:
        await inpaint_region(call, image="cat-sofa", region=rect)
    assert "only a single image" in str(refused.value) and "upscale1" in refused.value.next_step
    with pytest.raises(InvalidInput, match="exactly one of region and mask"):
        await inpaint_region(call, image="cat-sofa.u1")
    with pytest.raises(InvalidInput, match="exactly one"):
        await inpaint_region(call, image="cat-sofa.u1", region=rect, mask="AAAA")
    with pytest.raises(InvalidInput, match="not a base64 image"):
        await inpaint_region(call, image="cat-sofa.u1", mask="not base64 at all!")
    with pytest.raises(InvalidInput, match="empty"):
        await inpaint_region(call, image="cat-sofa.u1", region=[masks.Shape(shape="rect", box=[0.5, 0.5, 0.5, 0.9])])
    assert len(imagine_requests(fresh_sim)) == before


async def test_a_running_or_failed_image_is_not_acted_on(call, fresh_sim):
    fresh_sim.state.inject(
        "/midjourney/imagine", "task_fail", times=1, at_progress=35, code="api_error", message="fetch failed"
    )
    failed = await imagine(call, prompt="a quiet lake")
    assert failed.status == "failed" and failed.error and failed.error.message == "fetch failed"
    with pytest.raises(InvalidInput, match="no image to act on"):
        await apply_action(call, image="quiet-lake", action="upscale1")
    fresh_sim.state.configure(time_scale=1.0, start_delay_s=30.0)
    running = await imagine(call, prompt="a slow glacier", wait_seconds=0)
    await submitted(fresh_sim, "a slow glacier")
    assert running.status == "running"
    with pytest.raises(InvalidInput, match="still generating") as refused:
        await apply_action(call, image=running.name, action="upscale1")
    assert "get_task" in refused.value.next_step
