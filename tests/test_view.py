"""The MCP App in a real browser: headless Chromium, the test host on ext-apps' AppBridge, the view
built from app/, its tool calls reaching the real server through a real MCP client, against the
simulator. Every test also checks that the page logged no error (a CSP violation is one) and sent no
request: the view works under the spec's default CSP, offline."""

from __future__ import annotations

import base64
import io
import uuid

import anyio
import pytest
from conftest import TOKEN, settings_for
from PIL import Image, ImageChops, ImageDraw
from support import PATIENCE, eventually, imagine_requests
from viewhost import APPS_EXTENSION, CHROMIUM, CHROMIUM_ARGS, ViewHost, require_browser

from mj_mcp.core import actions
from mj_mcp.core.actions import Kind
from mj_mcp.sim import SimConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
async def apps_client(request, fresh_sim):
    """An MCP client that declares MCP Apps support, on the real server, in the wire era a test asks
    for: ``auto`` (the default) negotiates 2026-07-28, ``legacy`` speaks 2025-11-25."""
    from mcp import Client
    from mcp.client import advertise

    from mj_mcp.server import build_server

    server = build_server(settings_for(fresh_sim, preview_px=512))
    mode = getattr(request, "param", "auto")
    async with Client(server, mode=mode, extensions=[advertise(*APPS_EXTENSION)]) as c:
        yield c


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"  # module scope, so that one browser serves the module's tests (on one event loop)


@pytest.fixture(scope="module")
async def browser(anyio_backend):
    """One Chromium for the module (its start costs about 2 s of CPU); each test gets its own context."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def host(browser, apps_client):
    context = await browser.new_context(viewport={"width": 460, "height": 1000})
    # Every locator waits for its element this long (Playwright's default is 30 s): a busy machine's patience.
    context.set_default_timeout(PATIENCE * 1000)
    try:
        view_host = ViewHost(await context.new_page(), apps_client)
        await view_host.start()
        yield view_host
        assert view_host.problems() == []
    finally:
        await context.close()


def labels(kind: Kind) -> list[str]:
    return [actions.get(name).label for name in actions.ACTIONS_AFTER[kind]]


async def show_grid(host, client, prompt="a red fox in snow"):
    args = {"prompt": prompt}
    result = await client.call_tool("imagine", args)
    await host.show("imagine", args, result)
    await host.view.locator(".quad").first.wait_for()
    return result.structured_content["name"]


# The view's own protocol with its host is the same whatever era the host speaks with the server.
@pytest.mark.parametrize("apps_client", ["auto", "legacy"], indirect=True)
async def test_a_grid_renders_and_u2_sends_upscale2_then_shows_the_upscale_with_its_buttons(host, apps_client):
    grid = await show_grid(host, apps_client)
    view = host.view
    assert await view.locator(".quad").count() == 4
    assert await view.locator(".qnum").all_inner_texts() == ["1", "2", "3", "4"]
    assert await view.locator(".actions button.act").all_inner_texts() == labels(Kind.GRID)
    await view.locator(".stage img[src^='data:image/jpeg']").wait_for()
    await host.snap("view-grid")

    await view.get_by_role("button", name="U2", exact=True).click()
    await view.locator("h2", has_text=f"{grid}.u2").wait_for()
    await view.locator(".actions button.act").nth(10).wait_for()
    assert ("apply_action", {"image": grid, "action": "upscale2", "wait_seconds": 0}) in host.calls
    assert await view.locator(".actions button.act").all_inner_texts() == [*labels(Kind.SINGLE), "Vary (Region)"]
    assert await view.locator(".lineage button", has_text=grid).count() == 1
    await host.page.mouse.move(0, 0)  # no hover highlight in the picture
    await host.snap("view-upscale")


async def test_a_click_anywhere_in_a_quadrant_picks_it_and_its_own_buttons_act_on_it(host, apps_client):
    grid = await show_grid(host, apps_client)
    view = host.view
    mouse = host.page.mouse

    async def click_middle_of(n: int) -> None:
        box = await view.locator(f'.quad[data-quadrant="{n}"]').bounding_box()
        await mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    await click_middle_of(3)
    await view.locator('.quad[data-quadrant="3"].picked').wait_for()
    assert await view.locator('.quad[data-quadrant="3"] .qnum').get_attribute("aria-pressed") == "true"
    await click_middle_of(2)
    await view.locator('.quad[data-quadrant="2"].picked').wait_for()
    assert await view.locator(".quad.picked").count() == 1
    assert await view.locator('.quad[data-quadrant="2"] .qacts button').all_inner_texts() == ["U2", "V2"]
    await click_middle_of(2)
    await view.locator(".quad.picked").wait_for(state="detached")

    await click_middle_of(4)
    await view.locator('.quad[data-quadrant="4"] .qacts button', has_text="V4").click()
    await view.locator("h2", has_text=f"{grid}.v4").wait_for()
    assert ("apply_action", {"image": grid, "action": "variation4", "wait_seconds": 0}) in host.calls


async def test_a_running_job_shows_progress_rising_and_a_partial_picture_before_the_final_one(
    host, apps_client, fresh_sim
):
    fresh_sim.state.reset(SimConfig(tokens=[TOKEN], time_scale=0.5, progress_steps=[10, 35, 60, 85, 100]))
    args = {"prompt": "a slow lighthouse at dusk"}
    view = host.view
    done = {}

    async def the_models_call():
        done["result"] = await apps_client.call_tool("imagine", args)

    async with anyio.create_task_group() as tg:
        tg.start_soon(the_models_call)
        # As a host does: the view opens with the call and gets its input; the result comes at the end.
        await host.show("imagine", args)
        await view.locator(".pct", has_text="(preview)").wait_for()
        assert await view.locator(".stage img[src^='data:image/jpeg']").count() == 1
        await host.snap("view-progress")
    await host.result(done["result"])
    await view.locator(".quad").first.wait_for()
    # then the sharp rendition replaces the result's thumbnail
    await eventually(
        lambda: any(tool == "view_image" and sc and sc["preview"] == "final" for tool, sc in host.answers),
        "the view to ask for the final rendition",
    )
    seen = [(sc["progress"], sc["preview"]) for tool, sc in host.answers if tool == "view_image" and sc]
    running = [p for p, shown in seen if shown != "final"]
    assert running == sorted(running) and len(set(running)) >= 2, seen
    first_final = next(i for i, (_, shown) in enumerate(seen) if shown == "final")
    assert any(shown == "intermediate" for _, shown in seen[:first_final]), seen


async def test_an_ellipse_painted_with_the_mouse_is_the_mask_sent_upstream(host, apps_client, fresh_sim):
    await apps_client.call_tool("imagine", {"prompt": "a red fox in snow"})
    args = {"image": "fox-snow", "action": "upscale1"}
    result = await apps_client.call_tool("apply_action", args)
    raw = (result.structured_content["raw_width"], result.structured_content["raw_height"])
    await host.show("apply_action", args, result)
    view = host.view
    await view.get_by_role("button", name="Vary (Region)").click()
    await view.get_by_role("button", name="Ellipse").click()
    box = await view.locator("canvas.paint").bounding_box()
    start, end = (0.2, 0.3), (0.7, 0.85)
    mouse = host.page.mouse
    await mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    await mouse.down()
    await mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=8)
    await mouse.up()
    await view.get_by_label("Prompt for the region").fill("a white owl")
    await host.snap("view-painter")
    await view.get_by_role("button", name="Repaint").click()
    await view.locator("h2", has_text="fox-snow.u1.region").wait_for()

    # The view shows the new name as soon as it is reserved; the request upstream follows.
    def repaint_sent():
        return [r["body"] for r in imagine_requests(fresh_sim) if r["body"].get("action") == "variation_region"]

    [body] = await eventually(repaint_sent, "the repaint's request to reach the simulator")
    assert body["prompt"] == "a white owl"
    sent = Image.open(io.BytesIO(base64.b64decode(body["mask"]))).convert("L")
    assert sent.size == raw
    painted = sent.point(lambda v: 255 if v >= 128 else 0).convert("1")
    expected = Image.new("1", raw, 0)
    ImageDraw.Draw(expected).ellipse([start[0] * raw[0], start[1] * raw[1], end[0] * raw[0], end[1] * raw[1]], fill=1)
    inter = ImageChops.logical_and(painted, expected).histogram()[255]
    union = ImageChops.logical_or(painted, expected).histogram()[255]
    assert inter / union >= 0.95, inter / union


async def test_the_model_context_update_carries_the_persons_choice(host, apps_client):
    grid = await show_grid(host, apps_client)
    await host.view.get_by_role("button", name="V3", exact=True).click()
    await host.view.locator("h2", has_text=f"{grid}.v3").wait_for()
    # The view tells the host as it shows the new name; the message crosses frames on its own time.
    updates = await eventually(lambda: host.events("context"), "a ui/update-model-context")
    text = updates[-1]["payload"]["content"][0]["text"]
    assert "pressed V3" in text and f"on {grid} -> {grid}.v3" in text, text
    assert updates[-1]["payload"]["structuredContent"]["choices"][-1].endswith(f"-> {grid}.v3")


async def test_list_images_is_a_gallery_with_lineage_each_opening_its_image(host, apps_client):
    await apps_client.call_tool("imagine", {"prompt": "a red fox in snow"})
    await apps_client.call_tool("apply_action", {"image": "fox-snow", "action": "upscale3"})
    await apps_client.call_tool("imagine", {"prompt": "a lighthouse at dusk"})
    result = await apps_client.call_tool("list_images", {})
    await host.show("list_images", {}, result)
    view = host.view
    await view.locator(".gallery .thumb img").nth(2).wait_for()
    assert await view.locator(".gallery > li > button.card strong").all_inner_texts() == ["lighthouse-dusk", "fox-snow"]
    assert await view.locator(".family button.card strong").all_inner_texts() == ["fox-snow.u3"]
    await host.snap("view-gallery")
    await view.locator(".family button.card").click()
    await view.locator("h2", has_text="fox-snow.u3").wait_for()
    await view.get_by_role("button", name="Back").click()
    await view.locator(".gallery").wait_for()


async def test_buttons_are_keyboard_reachable_and_the_view_follows_the_host_theme(host, apps_client):
    grid = await show_grid(host, apps_client)
    view = host.view
    await view.locator(".stage img").wait_for()
    background = "() => getComputedStyle(document.body).backgroundColor"
    light = await host.page.frame_locator("#frame").locator("body").evaluate(background)
    await host.page.evaluate("() => window.host.theme('dark')")
    await view.locator("html[data-theme=dark]").wait_for()
    dark = await view.locator("body").evaluate(background)
    assert light != dark
    await host.snap("view-dark")
    # Tab from the first quadrant to U1, and Enter presses it.
    await view.locator(".qnum").first.focus()
    for _ in range(4):
        await host.page.keyboard.press("Tab")
    assert await view.locator(":focus").inner_text() == "U1"
    await host.page.keyboard.press("Enter")
    await view.locator("h2", has_text=f"{grid}.u1").wait_for()
    for button in await view.locator("button").all():
        assert (await button.get_attribute("aria-label")) or (await button.inner_text()).strip()


async def test_a_describe_shows_its_four_prompts_and_imagine_this_sends_one(host, apps_client):
    await apps_client.call_tool("imagine", {"prompt": "a red fox in snow"})
    args = {"image": "fox-snow"}
    result = await apps_client.call_tool("describe", args)
    described, prompts = result.structured_content["name"], result.structured_content["prompts"]
    assert len(prompts) == 4
    await host.show("describe", args, result)
    view = host.view
    await view.locator(".prompts li").nth(3).wait_for()
    assert await view.locator(".prompts li p").all_inner_texts() == prompts
    assert await view.get_by_role("button", name="Imagine this").count() == 4
    await host.snap("view-describe")

    await view.locator(".prompts li").nth(2).get_by_role("button", name="Imagine this").click()
    sent = ("imagine", {"prompt": prompts[2], "wait_seconds": 0})
    await eventually(lambda: sent in host.calls, "the press to reach the host as an imagine call")
    [child] = [sc["name"] for tool, sc in host.answers if tool == "imagine" and sc]
    await view.locator("h2", has_text=child).wait_for()
    updates = await eventually(lambda: host.events("context"), "a ui/update-model-context")
    assert f"Imagine this on prompt 3 of {described} -> {child}" in updates[-1]["payload"]["content"][0]["text"]


async def test_a_shortened_prompt_shows_its_candidates_and_imagine_this_sends_one(host, apps_client):
    args = {"prompt": "a lighthouse on a cliff at dusk, ultra detailed, dramatic sky --ar 16:9", "how": "shorten"}
    result = await apps_client.call_tool("rewrite_prompt", args)
    prompts = result.structured_content["prompts"]
    assert len(prompts) >= 2
    await host.show("rewrite_prompt", args, result)
    view = host.view
    await view.locator(".prompts li").nth(len(prompts) - 1).wait_for()
    assert await view.locator(".prompts li p").all_inner_texts() == prompts
    await view.locator(".prompts li").nth(1).get_by_role("button", name="Imagine this").click()
    sent = ("imagine", {"prompt": prompts[1], "wait_seconds": 0})
    await eventually(lambda: sent in host.calls, "the press to reach the host as an imagine call")


async def test_an_edit_shows_its_four_results_and_a_click_anywhere_in_one_opens_it(host, apps_client):
    await apps_client.call_tool("imagine", {"prompt": "a red fox in snow"})
    args = {"image": "fox-snow", "prompt": "a fox in a hat"}
    result = await apps_client.call_tool("edit_image", args)
    edit, results = result.structured_content["name"], result.structured_content["results"]
    assert len(results) == 4
    await host.show("edit_image", args, result)
    view = host.view
    await view.locator(".stage img[src^='data:image/jpeg']").wait_for()
    await view.locator(".quad").nth(3).wait_for()
    assert [await q.get_attribute("title") for q in await view.locator(".quad").all()] == results
    assert await view.locator(".qnum").all_inner_texts() == ["1", "2", "3", "4"]
    await host.snap("view-edit")

    box = await view.locator('.quad[data-quadrant="3"]').bounding_box()
    await host.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await view.locator("h2", has_text=results[2]).wait_for()
    assert any(tool == "view_image" and a["image"] == results[2] for tool, a in host.calls)
    await view.locator(".stage img[src^='data:image/jpeg']").wait_for()
    assert await view.locator(".lineage button", has_text=edit).count() == 1


async def test_a_videos_four_clips_load_through_the_server_and_play_and_its_buttons_extend_and_export(
    host, apps_client
):
    await apps_client.call_tool("imagine", {"prompt": "a red fox in snow"})
    await apps_client.call_tool("apply_action", {"image": "fox-snow", "action": "upscale2"})
    args = {"image": "fox-snow.u2", "prompt": "the fox runs", "mode": "turbo"}
    result = await apps_client.call_tool("animate", args)
    video, clips = result.structured_content["name"], result.structured_content["clips"]
    assert result.structured_content["status"] == "completed" and len(clips) == 4
    await host.show("animate", args, result)
    view = host.view
    # the poster first (the result's picture), then each clip read through the host from the server
    await view.locator(".stage img[src^='data:image/jpeg']").wait_for()
    videos = view.locator(".clip video")
    await videos.nth(3).wait_for(state="attached")

    async def all_ready():
        states = await videos.evaluate_all("(vs) => vs.map((v) => [v.readyState, v.src.slice(0, 20)])")
        return len(states) == 4 and all(ready >= 2 and src == "data:video/mp4;base6" for ready, src in states)

    await eventually(all_ready, "the four clips to load and show a frame")
    assert sorted(host.reads) == clips
    await host.snap("view-video")

    # hovering a clip plays it muted, clicking plays it in full with controls and sound
    second = view.locator('.clip[data-quadrant="2"]')
    await second.hover()
    played = "(v) => !v.paused && v.currentTime > 0 && v.muted"
    await eventually(lambda: second.locator("video").evaluate(played), "clip 2 to play muted on hover")
    await second.click()
    await view.locator(".clip.full video[controls]").wait_for()
    assert await second.locator("video").evaluate("(v) => v.muted") is False
    assert await view.get_by_label("Clip", exact=True).input_value() == "2"
    await view.get_by_role("button", name="Back to the four clips").click()
    await view.locator(".clip.full").wait_for(state="detached")

    # Export saves the chosen clip
    path = f"view-{video}-{uuid.uuid4().hex[:8]}.mp4"
    await view.get_by_label("Clip", exact=True).select_option("3")
    await view.get_by_label("Export file name").fill(path)
    await view.get_by_role("button", name="Export").click()
    await view.locator(".status", has_text="Saved").wait_for()
    assert ("export_image", {"image": video, "path": path, "clip": 3}) in host.calls

    # one button per extend, labelled as Midjourney labels it; the press is apply_action extendN
    extends = view.locator(".actions button.act")
    assert [await b.get_attribute("data-action") for b in await extends.all()] == [f"extend{n}" for n in range(1, 5)]
    assert await extends.all_inner_texts() == [f"{n} {actions.get('extend1').label}" for n in range(1, 5)]
    await view.locator('[data-action="extend2"]').click()
    sent = ("apply_action", {"image": video, "action": "extend2", "wait_seconds": 0})
    await eventually(lambda: sent in host.calls, "the extend press to reach the host")
    [child] = [sc["name"] for tool, sc in host.answers if tool == "apply_action" and sc]
    await view.locator("h2", has_text=child).wait_for()
    assert await view.locator(".lineage button", has_text=video).count() == 1
