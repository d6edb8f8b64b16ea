"""Tool schemas: the apply_action enum comes from the catalogue; annotations say what each tool
touches; the whole list stays small (the model reads it every turn); results carry the documented
structured content."""

from __future__ import annotations

import json

import pytest

from mj_mcp.core import actions
from mj_mcp.core.operations import MODEL_TOOLS, TOOL, Effect

pytestmark = pytest.mark.anyio

RESULT_FIELDS = {
    "name",
    "status",
    "progress",
    "task_id",
    "image_id",
    "image_url",
    "raw_image_url",
    "width",
    "height",
    "raw_width",
    "raw_height",
    "actions",
    "parent",
    "action",
    "prompt",
    "error",
    "simulated",
}


async def tools_by_name(client):
    return {t.name: t for t in (await client.list_tools()).tools}


async def test_the_tools_of_the_operation_table_with_their_titles_and_parameters(client):
    tools = await tools_by_name(client)
    assert list(tools) == [t.name for t in MODEL_TOOLS]
    for spec in MODEL_TOOLS:
        assert tools[spec.name].title == spec.title and spec.title[0].isupper()
    params = {name: list(t.input_schema["properties"]) for name, t in tools.items()}
    assert params["imagine"] == ["prompt", "images", "aspect_ratio", "mode", "translation", "name", "wait_seconds"]
    assert params["apply_action"] == ["image", "action", "name", "mode", "wait_seconds"]
    assert params["blend"] == ["images", "prompt", "aspect_ratio", "mode", "name", "wait_seconds"]
    assert params["inpaint_region"] == ["image", "region", "mask", "prompt", "name", "wait_seconds"]
    assert params["describe"] == ["image"]
    assert params["rewrite_prompt"] == ["prompt", "how"]
    assert tools["rewrite_prompt"].input_schema["properties"]["how"]["enum"] == ["shorten", "translate"]
    assert params["get_task"] == ["ref", "wait_seconds", "seed"]
    assert params["list_images"] == ["limit", "lineage_of"]
    assert params["export_image"] == ["image", "path", "overwrite", "clip"]
    assert params["animate"] == ["image", "prompt", "end_image", "loop", "resolution", "mode", "name", "wait_seconds"]
    # video has no relax mode: the model is offered the two it has
    assert tools["animate"].input_schema["properties"]["mode"]["enum"] == ["fast", "turbo"]
    assert tools["imagine"].input_schema["required"] == ["prompt"]
    assert tools["apply_action"].input_schema["required"] == ["image", "action"]
    assert tools["blend"].input_schema["properties"]["images"]["minItems"] == 2
    assert tools["blend"].input_schema["properties"]["images"]["maxItems"] == 5
    assert tools["imagine"].input_schema["properties"]["mode"]["enum"] == ["fast", "relax", "turbo"]


async def test_apply_action_enum_is_the_catalogue_follow_ups(client):
    schema = (await tools_by_name(client))["apply_action"].input_schema
    enum = schema["properties"]["action"]["enum"]
    assert enum == [a.name for a in actions.CATALOGUE if a.tool == "apply_action"]
    assert "generate" not in enum and "variation_region" not in enum
    assert {"upscale1", "variation4", "reroll", "upscale_4x", "zoom_out_1_5x", "pan_down"} <= set(enum)


async def test_annotations_say_what_each_tool_touches(client):
    """Hints are published only where they differ from the spec's defaults (not read-only,
    destructive, not idempotent, open world); read them with those defaults."""

    def hint(ann, field, default):
        value = getattr(ann, field) if ann else None
        return default if value is None else value

    for name, tool in (await tools_by_name(client)).items():
        ann = tool.annotations
        assert tool.description and len(tool.description) < 120
        effect = TOOL[name].effect
        if effect in (Effect.GENERATES, Effect.LOOKS_UP):  # one compact shape
            assert tool.output_schema == {
                "type": "object",
                "required": ["name", "status"],
                "properties": {"name": {"type": "string"}, "status": {"enum": ["running", "completed", "failed"]}},
            }
        else:
            assert tool.output_schema is None  # results still carry structuredContent (checked below)
        read_only = hint(ann, "read_only_hint", False)
        destructive = hint(ann, "destructive_hint", True)
        open_world = hint(ann, "open_world_hint", True)
        if effect in (Effect.LOOKS_UP, Effect.READS):
            assert read_only
        elif effect is Effect.WRITES:  # writes the user's disk: may overwrite when asked to
            assert (read_only, destructive, open_world) == (False, True, False)
        else:  # generating tools: they create, never destroy, and reach the API
            assert (read_only, destructive, open_world) == (False, False, True)
        assert open_world is (effect in (Effect.GENERATES, Effect.LOOKS_UP))


async def test_results_carry_the_documented_structured_content(client):
    from mj_mcp.server.results import ImageResult

    result = await client.call_tool("imagine", {"prompt": "a paper lantern"})
    assert RESULT_FIELDS | {"uri"} <= set(result.structured_content)
    ImageResult.model_validate(result.structured_content)  # the shape the README documents


async def test_region_schema_offers_the_three_shapes(client):
    schema = (await tools_by_name(client))["inpaint_region"].input_schema
    text = json.dumps(schema)
    for word in ('"rect"', '"ellipse"', '"polygon"', '"box"', '"points"'):
        assert word in text


async def test_the_tool_list_stays_small(client):
    # The tools as bench/context.py counts them (the list's protocol envelope is not the model's to read)
    tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in (await client.list_tools()).tools]
    size = len(json.dumps(tools, ensure_ascii=False))
    # Issue 18: room for every tool of both parts and the tasks issue (titles, execution) in 10,000;
    # output schemas included; bench/context.py prints the per-tool figures.
    assert size <= 10_000, size


async def test_instructions_say_the_images_are_simulated(client):
    assert "SIMULATOR" in client.instructions and "ACEDATACLOUD_API_TOKEN" in client.instructions
