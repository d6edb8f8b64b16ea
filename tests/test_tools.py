"""The tools as MCP adapters over the studio, through the SDK client, once in each protocol era: every
tool's arguments reach its operation (schema validation included) and its result comes back as the
protocol wants it (text, structured record, progress notifications, thumbnail, resource link, tool
errors). The product's rules themselves are tested in the studio tier (tests/studio/)."""

from __future__ import annotations

import uuid

import pytest
from support import call, imagine_requests

from mj_mcp.core import actions
from mj_mcp.core.kinds import Kind

pytestmark = pytest.mark.anyio


async def test_a_generating_tool_answers_with_the_record_and_progress(client, fresh_sim):
    result, sc, text, events = await call(client, "imagine", prompt="Lamborghini speeds inside a volcano")
    assert not result.is_error, text
    assert (sc["name"], sc["status"], sc["kind"], sc["progress"]) == ("lamborghini-volcano", "completed", "grid", 100)
    assert sc["actions"] == list(actions.ACTIONS_AFTER[Kind.GRID]) and sc["uri"] == "mj://images/lamborghini-volcano"
    assert sc["simulated"] is True and text.startswith("[simulated] ")
    assert "lamborghini-volcano" in text and "upscale" in text and sc["image_id"] not in text
    # progress notifications: strictly increasing, out of 100, ending at 100, named after the job
    values = [p for p, _, _ in events]
    assert len(values) >= 3 and values == sorted(set(values)) and values[-1] == 100
    assert all(total == 100 for _, total, _ in events) and all(
        m.startswith("lamborghini-volcano: ") for _, _, m in events
    )


async def test_each_tool_reaches_its_operation(client, fresh_sim):
    await call(client, "imagine", prompt="a cat on a sofa")
    result, single, text, _ = await call(client, "apply_action", image="cat-sofa", action="upscale1", mode="turbo")
    assert not result.is_error and single["name"] == "cat-sofa.u1" and single["kind"] == "single", text
    assert imagine_requests(fresh_sim)[-1]["body"]["mode"] == "turbo"
    # a lone shape, given as a dict, is a region of one (the schema's own validation)
    result, painted, text, _ = await call(
        client,
        "inpaint_region",
        image="cat-sofa.u1",
        prompt="a dog",
        region={"shape": "ellipse", "box": [0.25, 0.5, 0.75, 1.0]},
    )
    assert not result.is_error and painted["name"] == "cat-sofa.u1.region", text
    result, mixed, text, _ = await call(client, "blend", images=["cat-sofa", "cat-sofa.u1.region"])
    assert not result.is_error and mixed["kind"] == "grid" and mixed["sources"] == ["cat-sofa", "cat-sofa.u1.region"]
    result, found, text, _ = await call(client, "get_task", ref="cat-sofa.u1")
    assert not result.is_error and found["name"] == "cat-sofa.u1" and "is ready" in text and "get_task" not in text
    result, listed, text, _ = await call(client, "list_images", limit=2)
    assert [i["name"] for i in listed["images"]] == [mixed["name"], "cat-sofa.u1.region"] and listed["total"] == 4
    assert text.splitlines()[0].startswith(mixed["name"] + ": grid")
    # The export directory is the session's: a file name of this test's own.
    path = f"sofa/{uuid.uuid4().hex}.png"
    result, exported, text, _ = await call(client, "export_image", image="cat-sofa.u1", path=path)
    assert not result.is_error and exported["mime"] == "image/png" and exported["path"].endswith(path), text


async def test_a_refusal_is_a_tool_error_that_says_what_would_work(client, fresh_sim):
    await call(client, "imagine", prompt="a lighthouse at dusk")
    result, sc, text, _ = await call(client, "apply_action", image="lighthouse-dusk", action="zoom_out_2x")
    assert result.is_error and sc is None
    assert "zoom_out_2x is not available on lighthouse-dusk" in text and "Next: Use one of: upscale1" in text
    assert text.endswith("Nothing was sent upstream.")
    # a value the schema refuses (a box outside 0..1) never reaches the studio
    await call(client, "apply_action", image="lighthouse-dusk", action="upscale1")
    result, _, text, _ = await call(
        client, "inpaint_region", image="lighthouse-dusk.u1", region={"shape": "rect", "box": [0.1, 0.1, 1.5, 0.2]}
    )
    assert result.is_error and "less than or equal to 1" in text
    assert len(imagine_requests(fresh_sim)) == 2


async def test_a_running_job_answers_running_and_get_task_follows_it(client, fresh_sim):
    fresh_sim.state.configure(time_scale=0.1)
    result, sc, text, _ = await call(client, "imagine", prompt="a paper boat", wait_seconds=0)
    assert sc["status"] == "running" and sc["uri"] is None
    assert 'call get_task(ref="paper-boat", wait_seconds=50)' in text
    result, sc, text, events = await call(client, "get_task", ref="paper-boat", wait_seconds=60)
    assert sc["status"] == "completed" and "is ready" in text and events and events[-1][0] == 100


async def test_the_text_tools_answer_with_their_texts_named_and_readable(client, fresh_sim):
    """describe, rewrite_prompt and get_task's seed: texts in the text and in structuredContent.prompts,
    a name, a resource read as text/plain, an export as .txt, a line in list_images."""
    await call(client, "imagine", prompt="a cat on a sofa")
    result, words, text, _ = await call(client, "describe", image="cat-sofa")
    assert not result.is_error and (words["name"], words["kind"], words["parent"]) == (
        "cat-sofa.prompts",
        "texts",
        "cat-sofa",
    ), text
    assert len(words["prompts"]) == 4 and words["uri"] == "mj://images/cat-sofa.prompts"
    assert text.startswith("[simulated] cat-sofa.prompts is ready, prompts for imagine:\n1. ")
    assert [line.split(". ", 1)[1] for line in text.splitlines()[1:]] == words["prompts"]
    # the texts are in the text: no picture, no link to repeat them
    assert [block.type for block in result.content] == ["text"]
    read = await client.read_resource("mj://images/cat-sofa.prompts")
    assert read.contents[0].mime_type == "text/plain" and read.contents[0].text.splitlines() == words["prompts"]

    result, short, text, _ = await call(
        client, "rewrite_prompt", prompt="a cat on a sofa, cosy, ultra detailed --ar 3:2"
    )
    assert not result.is_error and short["kind"] == "texts" and 1 <= len(short["prompts"]) <= 5, text
    assert "shorter prompts" in text.splitlines()[0] and short["prompts"][0] in text
    result, english, text, _ = await call(client, "rewrite_prompt", prompt="un gato en el mar", how="translate")
    assert not result.is_error and len(english["prompts"]) == 1 and text.endswith(english["prompts"][0]), text

    result, seeded, text, _ = await call(client, "get_task", ref="cat-sofa", seed=True)
    assert not result.is_error and seeded["seed"] and f"--seed {seeded['seed']}" in text, text
    assert [r["body"] for r in fresh_sim.state.requests("/midjourney/seed")] == [{"image_id": seeded["image_id"]}]

    result, listed, text, _ = await call(client, "list_images")
    assert text.splitlines()[0].startswith(english["name"] + ": texts")
    assert any(line.startswith("cat-sofa.prompts: texts, from cat-sofa") for line in text.splitlines()), text
    path = f"words/{uuid.uuid4().hex}"
    result, exported, text, _ = await call(client, "export_image", image="cat-sofa.prompts", path=path)
    assert not result.is_error and exported["mime"] == "text/plain" and exported["path"].endswith(path + ".txt"), text


async def test_a_refused_describe_or_seed_is_a_tool_error(client, fresh_sim):
    result, sc, text, _ = await call(client, "describe", image="http://cdn.example.com/a.png")
    assert result.is_error and sc is None and "is not https" in text and text.endswith("Nothing was sent upstream.")
    result, _, text, _ = await call(client, "rewrite_prompt", prompt="a cat", how="summarise")
    assert result.is_error and "shorten" in text and "translate" in text
    _, short, _, _ = await call(client, "rewrite_prompt", prompt="a cat on a sofa, cosy, ultra detailed --ar 3:2")
    result, _, text, _ = await call(client, "get_task", ref=short["name"], seed=True)
    assert result.is_error and "not an image" in text
    assert fresh_sim.state.requests("/midjourney/describe") == fresh_sim.state.requests("/midjourney/seed") == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_text_tools_work_against_the_embedded_simulator(mode, fresh_sim):
    """No token: the server's own simulator, whose image URLs name a fixed origin. describe sends that URL,
    and the simulator knows its own picture (its prompts are about a teddy bear)."""
    from conftest import settings_for
    from mcp import Client

    from mj_mcp.server import build_server

    settings = settings_for(fresh_sim, embed_sim=True, sim_time_scale=0.0)
    async with Client(build_server(settings), mode=mode) as c:
        _, bear, _, _ = await call(c, "imagine", prompt="a teddy bear on a swing")
        result, words, text, _ = await call(c, "describe", image=bear["name"])
        assert not result.is_error and len(words["prompts"]) == 4, text
        assert all("teddy bear" in p for p in words["prompts"]), words["prompts"]
        read = await c.read_resource(words["uri"])
        assert read.contents[0].mime_type == "text/plain" and read.contents[0].text.splitlines() == words["prompts"]
        result, short, text, _ = await call(c, "rewrite_prompt", prompt="a teddy bear on a swing, ultra detailed")
        assert not result.is_error and short["prompts"], text
        result, seeded, text, _ = await call(c, "get_task", ref=bear["name"], seed=True)
        assert not result.is_error and seeded["seed"].isdigit(), text
    # nothing of it reached the shared simulator
    assert fresh_sim.state.requests() == []
