"""The jobs that make texts (describe, rewrite_prompt) and an image's seed (get_task with seed), through the
studio against the simulator: what they send, what their records keep, what is refused before anything
is sent, and that a seed is asked for once per image."""

from __future__ import annotations

import anyio
import pytest
from support import eventually, submitted

from mj_mcp import errors
from mj_mcp.core.kinds import Kind
from mj_mcp.records import TEXT_MIME
from mj_mcp.studio.describe import describe
from mj_mcp.studio.export import export_image
from mj_mcp.studio.get import get_task
from mj_mcp.studio.imagine import imagine
from mj_mcp.studio.listing import list_images
from mj_mcp.studio.rewrite import rewrite_prompt

pytestmark = pytest.mark.anyio

DESCRIBE, SEED = "/midjourney/describe", "/midjourney/seed"
SHORTEN, TRANSLATE = "/midjourney/shorten", "/midjourney/translate"
LONG = "a red fox in the snow, ultra detailed, masterpiece, golden hour, soft light --ar 16:9 --s 250"


def bodies(sim, path: str) -> list[dict]:
    return [r["body"] for r in sim.state.requests(path)]


async def test_describe_of_a_name_keeps_four_prompts_in_the_images_lineage(call, fresh_sim):
    grid = await imagine(call, prompt="a red fox in the snow --ar 16:9")
    words = await describe(call, image=grid.name)
    assert (words.name, words.status, words.kind, words.action) == (
        "fox-snow.prompts",
        "completed",
        Kind.TEXTS,
        "describe",
    )
    assert len(words.prompts) == 4 and all(p.endswith("--ar 16:9") for p in words.prompts), words.prompts
    assert (words.parent, words.parent_id, words.sources) == (grid.name, grid.id, [grid.name])
    # the full-size image is what upstream describes; the task it keeps is the record's
    assert bodies(fresh_sim, DESCRIBE) == [{"image_url": grid.raw_image_url}]
    assert words.task_id in fresh_sim.state.tasks
    # kept: a later look asks nothing, and the image's family names it
    assert (await get_task(call, ref=words.name)).prompts == words.prompts
    assert {r.name for r in (await list_images(call, lineage_of=grid.name)).records} == {grid.name, words.name}
    assert len(fresh_sim.state.requests(DESCRIBE)) == 1


async def test_describe_of_an_https_url_is_named_after_its_file(call, fresh_sim):
    url = "https://cdn.example.com/pictures/red_fox-lighthouse.png?ex=1"
    words = await describe(call, image=url)
    assert words.name == "fox-lighthouse.prompts" and words.parent is None and words.sources == [url]
    assert len(words.prompts) == 4 and bodies(fresh_sim, DESCRIBE) == [{"image_url": url}]


async def test_describe_is_stored_before_its_request_leaves(call, fresh_sim):
    grid = await imagine(call, prompt="a red fox in the snow")
    # Long enough for a busy machine to look at the store while upstream holds the request.
    fresh_sim.state.inject(DESCRIBE, "slow;delay=6")
    seen = {}

    async def look() -> None:
        await eventually(
            lambda: fresh_sim.state.requests(DESCRIBE), "the describe to reach the simulator", interval=0.005
        )
        seen["record"] = await call.workspace.find("fox-snow.prompts")

    async with anyio.create_task_group() as tg:
        tg.start_soon(look)
        await describe(call, image=grid.name)
    stored = seen["record"]
    assert stored is not None and stored.status == "running" and stored.submission is not None, stored
    assert (stored.submission.endpoint, stored.submission.fingerprint) == (
        "describe",
        {"image_url": grid.raw_image_url},
    )


@pytest.mark.parametrize(
    ("image", "says"),
    [
        ("http://cdn.example.com/a.png", "is not https"),
        ("https://cdn.example.com/a b.png", "is not one https URL"),
        ("no-such-image", "no image or task"),
    ],
)
async def test_describe_refuses_what_it_cannot_describe_before_sending(call, fresh_sim, image, says):
    with pytest.raises(errors.InvalidInput, match=says):
        await describe(call, image=image)
    assert fresh_sim.state.requests(DESCRIBE) == []


async def test_describe_refuses_a_running_a_failed_image_and_texts(call, fresh_sim):
    fresh_sim.state.inject("/midjourney/imagine", "task_fail;at_progress=35")
    failed = await imagine(call, prompt="a broken vase")
    assert failed.status == "failed"
    with pytest.raises(errors.InvalidInput, match="failed"):
        await describe(call, image=failed.name)
    texts = await rewrite_prompt(call, prompt=LONG)
    with pytest.raises(errors.InvalidInput, match="is texts, not an image"):
        await describe(call, image=texts.name)
    fresh_sim.state.configure(time_scale=0.2)
    running = await imagine(call, prompt="a slow glacier", wait_seconds=0)
    await submitted(fresh_sim, "a slow glacier")
    with pytest.raises(errors.InvalidInput, match="still generating") as refused:
        await describe(call, image=running.name)
    assert "get_task" in (refused.value.next_step or "")
    assert fresh_sim.state.requests(DESCRIBE) == []


async def test_shorten_keeps_up_to_five_shorter_candidates_as_a_texts_record(call, fresh_sim):
    short = await rewrite_prompt(call, prompt=LONG)
    assert (short.status, short.kind, short.action, short.prompt) == ("completed", Kind.TEXTS, "shorten", LONG)
    assert short.name == "masterpiece-golden.short"
    assert 1 <= len(short.prompts) <= 5 and all(len(p) < len(LONG) for p in short.prompts), short.prompts
    assert bodies(fresh_sim, SHORTEN) == [{"prompt": LONG}] and fresh_sim.state.requests(TRANSLATE) == []
    assert (await call.workspace.resolve(short.name)).prompts == short.prompts


async def test_translate_keeps_the_one_english_text(call, fresh_sim):
    english = await rewrite_prompt(call, prompt="un gato en el mar --ar 16:9", how="translate")
    assert (english.name, english.action, len(english.prompts)) == ("gato-mar.en", "translate", 1)
    assert "cat" in english.prompts[0].lower(), english.prompts
    assert bodies(fresh_sim, TRANSLATE) == [{"content": "un gato en el mar --ar 16:9"}]


@pytest.mark.parametrize(("prompt", "says"), [("   ", "prompt is empty"), ("a fox -c 50", "prompt refused")])
async def test_rewrite_refuses_a_prompt_imagine_would_refuse_before_sending(call, fresh_sim, prompt, says):
    for how in ("shorten", "translate"):
        with pytest.raises(errors.InvalidInput, match=says):
            await rewrite_prompt(call, prompt=prompt, how=how)
    assert fresh_sim.state.requests(SHORTEN) == fresh_sim.state.requests(TRANSLATE) == []


async def test_a_failed_rewrite_is_never_resent_and_frees_its_name(call, fresh_sim):
    fresh_sim.state.inject(SHORTEN, "500")
    with pytest.raises(errors.ServerError):
        await rewrite_prompt(call, prompt=LONG)
    assert len(fresh_sim.state.requests(SHORTEN)) == 1
    assert await call.workspace.find("masterpiece-golden.short") is None


async def test_a_texts_record_reads_and_exports_as_text(call, fresh_sim, tmp_path):
    words = await describe(call, image=(await imagine(call, prompt="a red fox in the snow")).name)
    data, mime = await call.studio.content(words)
    assert mime == TEXT_MIME and data.decode().splitlines() == words.prompts
    call.studio.settings = call.studio.settings.model_copy(update={"export_dir": tmp_path})
    done = await export_image(call, image=words.name, path="fox/words")
    assert done.path.endswith("fox/words.txt") and done.mime == TEXT_MIME
    assert (tmp_path / "fox" / "words.txt").read_text().splitlines() == words.prompts
    with pytest.raises(errors.ExportRefused, match=r"does not end in \.txt, and it is text"):
        await export_image(call, image=words.name, path="fox/words.png")


async def test_the_seed_is_asked_once_and_kept_in_the_images_record(call, fresh_sim):
    grid = await imagine(call, prompt="a red fox in the snow")
    seeded = await get_task(call, ref=grid.name, seed=True)
    assert seeded.seed and seeded.seed.isdigit() and seeded.public()["seed"] == seeded.seed
    assert bodies(fresh_sim, SEED) == [{"image_id": grid.image_id}]
    # kept: asked for again (and looked up plainly), nothing more is sent
    assert (await get_task(call, ref=grid.name, seed=True)).seed == seeded.seed
    assert (await call.workspace.resolve(grid.name)).seed == seeded.seed
    assert len(fresh_sim.state.requests(SEED)) == 1
    # the seed reproduces the image: the simulator draws the same grid for the same prompt and --seed
    again = await imagine(call, prompt=f"a red fox in the snow --seed {seeded.seed}")
    assert (await get_task(call, ref=again.name, seed=True)).seed == seeded.seed


async def test_calls_at_once_ask_for_one_seed_once(call, fresh_sim):
    grid = await imagine(call, prompt="a red fox in the snow")
    fresh_sim.state.inject(SEED, "slow;delay=0.3")
    seeds = []

    async def one() -> None:
        seeds.append((await get_task(call, ref=grid.name, seed=True)).seed)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
    assert len(set(seeds)) == 1 and len(seeds) == 3 and seeds[0]
    assert len(fresh_sim.state.requests(SEED)) == 1


async def test_a_seed_is_refused_where_there_is_no_image_id(call, fresh_sim):
    fresh_sim.state.configure(time_scale=0.2)
    running = await imagine(call, prompt="a slow glacier", wait_seconds=0)
    await submitted(fresh_sim, "a slow glacier")
    with pytest.raises(errors.InvalidInput, match="still generating") as refused:
        await get_task(call, ref=running.name, seed=True)
    assert "seed=true" in (refused.value.next_step or "")
    fresh_sim.state.configure(time_scale=0.01)
    texts = await rewrite_prompt(call, prompt=LONG)
    with pytest.raises(errors.InvalidInput, match="not an image"):
        await get_task(call, ref=texts.name, seed=True)
    assert fresh_sim.state.requests(SEED) == []
