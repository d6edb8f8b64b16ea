"""edit_image as an MCP tool, through the SDK client, once in each protocol era: what the model reads of an
edit (its results by name, one preview of the four labelled like a grid's quadrants, a link to each), the
results as resources and exports, and refusals as tool errors. The rules are tested in the studio tier
(tests/studio/test_edits.py)."""

from __future__ import annotations

import base64
import io
import json
import uuid

import pytest
from conftest import settings_for
from PIL import Image
from support import call

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["auto", "legacy"])
async def client(request, fresh_sim):
    """The real server in memory, previews on, in both protocol eras (2026-07-28 and 2025-11-25)."""
    from mcp import Client

    from mj_mcp.server import build_server

    async with Client(build_server(settings_for(fresh_sim, preview_px=256)), mode=request.param) as c:
        yield c


async def test_an_edit_reads_as_its_four_named_results_previewed_like_a_grid(client, fresh_sim):
    await call(client, "imagine", prompt="a red fox in snow")
    result, sc, text, events = await call(
        client, "edit_image", image="fox-snow", prompt="a fox in a hat", region={"shape": "rect", "box": [0, 0, 1, 0.5]}
    )
    assert not result.is_error, text
    names = [f"fox-snow.edit.{n}" for n in range(1, 5)]
    assert (sc["name"], sc["kind"], sc["status"], sc["results"]) == ("fox-snow.edit", "edits", "completed", names)
    assert len(sc["sub_images"]) == 4 and sc["uri"] is None and events and events[-1][0] == 100
    assert ", ".join(names) in text and "apply_action has none" in text and sc["sub_images"][0] not in text
    # one preview: the four results as a 2x2 sheet, each quadrant labelled as a grid's are
    [preview] = [b for b in result.content if b.type == "image"]
    sheet = Image.open(io.BytesIO(base64.b64decode(preview.data)))
    assert sheet.size == (256, 256)
    links = [b for b in result.content if b.type == "resource_link"]
    assert [str(link.uri) for link in links] == [f"mj://images/{n}" for n in names]
    # each result is an image: listed, read, exported, shown with its next step
    listed = (await client.list_resources()).resources
    assert {f"mj://images/{n}" for n in names} <= {str(r.uri) for r in listed}
    read = await client.read_resource("mj://images/fox-snow.edit.3")
    assert base64.b64decode(read.contents[0].blob).startswith(b"\x89PNG")
    result, exported, text, _ = await call(
        client, "export_image", image="fox-snow.edit.3", path=f"edits/{uuid.uuid4().hex}.png"
    )
    assert not result.is_error and exported["mime"] == "image/png", text
    result, one, text, _ = await call(client, "get_task", ref="fox-snow.edit.2")
    assert (one["kind"], one["parent"], one["uri"]) == ("edited", "fox-snow.edit", "mj://images/fox-snow.edit.2")
    assert 'edit_image(image="fox-snow.edit.2"' in text and any(b.type == "image" for b in result.content)


async def test_the_apps_picture_of_an_edit_is_its_results_side_by_side(client, fresh_sim):
    await call(client, "imagine", prompt="a windmill in a field")
    await call(client, "edit_image", image="windmill-field", prompt="a windmill at night")
    result = await client.call_tool("view_image", {"image": "windmill-field.edit", "max_px": 300})
    sc = result.structured_content
    assert (sc["preview"], sc["results"]) == ("final", [f"windmill-field.edit.{n}" for n in range(1, 5)])
    picture = next(c for c in result.content if c.type == "image")
    assert Image.open(io.BytesIO(base64.b64decode(picture.data))).size == (300, 300)


async def test_what_upstream_does_not_offer_is_a_tool_error_that_says_what_to_do(client, fresh_sim):
    await call(client, "imagine", prompt="a paper boat")
    await call(client, "edit_image", image="paper-boat", prompt="a golden boat")
    result, sc, text, _ = await call(client, "apply_action", image="paper-boat.edit.1", action="upscale1")
    assert result.is_error and sc is None and "edit_image" in text and text.endswith("Nothing was sent upstream.")
    result, _, text, _ = await call(client, "export_image", image="paper-boat.edit", path="four.png")
    assert result.is_error and "paper-boat.edit.1" in text
    result, _, text, _ = await call(client, "edit_image", image="http://example.com/a.png", prompt="x")
    assert result.is_error and "is not https" in text
    # an empty prompt never reaches the studio
    result, _, text, _ = await call(client, "edit_image", image="paper-boat", prompt="")
    assert result.is_error and "at least 1 character" in text
    assert len(fresh_sim.state.requests("/midjourney/edits")) == 1


async def test_the_tool_points_at_inpaint_regions_shapes_rather_than_repeat_them(client):
    [tool] = [t for t in (await client.list_tools()).tools if t.name == "edit_image"]
    schema = tool.input_schema
    assert schema["required"] == ["image", "prompt"]
    assert schema["properties"]["region"] == {"type": "array", "description": "As inpaint_region's"}
    assert '"ellipse"' not in json.dumps(schema) and tool.title == "Edit a picture"
