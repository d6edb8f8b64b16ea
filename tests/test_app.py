"""The MCP App's server side without a browser: the ui:// resource and its catalogue, the committed
build, and clients without MCP Apps getting exactly what they got before the App existed."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import settings_for
from PIL import Image
from viewhost import APPS_EXTENSION

from mj_mcp.core import actions
from mj_mcp.core.operations import MODEL_TOOLS
from mj_mcp.ui import CATALOGUE_SLOT, VIEW_URI, catalogue, view_html

pytestmark = pytest.mark.anyio
APP = Path(__file__).resolve().parent.parent / "app"
# tools/list as a client without MCP Apps sees it: the model's tools of the operation table, no _meta at all.
TOOLS_BEFORE = [t.name for t in MODEL_TOOLS]
BOUND = {t.name for t in MODEL_TOOLS if t.in_app}


def test_the_view_carries_the_catalogue_in_its_slot():
    html = view_html()
    assert CATALOGUE_SLOT not in html and html.count('<script id="mj-catalogue" type="application/json">') == 1
    slot = '<script id="mj-catalogue" type="application/json">'
    start = html.index(slot) + len(slot)
    injected = json.loads(html[start : html.index("</script>", start)])
    assert injected == catalogue()
    assert [injected["actions"][a.name]["label"] for a in actions.CATALOGUE] == [a.label for a in actions.CATALOGUE]
    assert injected["actions"]["variation_region"]["unlisted_on"] == ["single", "upscaled"]


def test_the_view_is_one_file_that_loads_nothing():
    """Everything inline: no element or style fetches a thing (the browser tests also see no request)."""
    html = view_html()
    assert re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=", html, flags=re.I) == []
    style = html[html.index("<style>") : html.index("</style>")]
    assert "url(" not in style and "@import" not in style


def test_the_committed_view_is_the_build_of_app():
    assert shutil.which("node") and (APP / "node_modules").is_dir(), (
        "run scripts/test-deps (the README's test command does)"
    )
    run = subprocess.run(["node", "build.mjs", "--check"], cwd=APP, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr + run.stdout


@pytest.fixture(params=["auto", "legacy"])
async def plain_and_apps(request, fresh_sim):
    """Two clients on one server in one era: one without MCP Apps, one that declares it."""
    from mcp import Client
    from mcp.client import advertise

    from mj_mcp.server import build_server

    server = build_server(settings_for(fresh_sim, preview_px=512))
    async with (
        Client(server, mode=request.param) as plain,
        Client(server, mode=request.param, extensions=[advertise(*APPS_EXTENSION)]) as apps,
    ):
        yield plain, apps


async def test_a_client_without_apps_gets_todays_tools_resources_and_results(plain_and_apps):
    plain, apps = plain_and_apps
    tools = (await plain.list_tools()).tools
    assert [t.name for t in tools] == TOOLS_BEFORE and all(t.meta is None for t in tools)
    assert not any(str(r.uri).startswith("ui://") for r in (await plain.list_resources()).resources)
    result = await plain.call_tool("imagine", {"prompt": "a red fox in snow"})
    assert [c.type for c in result.content] == ["text", "image", "resource_link"]
    assert "preview" not in result.structured_content
    # The same call from an Apps client answers the same way: no tool's behaviour depends on the view.
    again = await apps.call_tool("imagine", {"prompt": "a red fox in snow", "name": "fox-2"})
    assert [c.type for c in again.content] == ["text", "image", "resource_link"]
    assert set(again.structured_content) == set(result.structured_content)


async def test_an_apps_client_gets_the_view_bound_to_the_tools_and_the_app_only_picture_tool(plain_and_apps):
    _, apps = plain_and_apps
    tools = {t.name: t for t in (await apps.list_tools()).tools}
    bound = {name for name, t in tools.items() if (t.meta or {}).get("ui", {}).get("resourceUri") == VIEW_URI}
    assert bound == BOUND | {"view_image"}
    assert tools["view_image"].meta["ui"]["visibility"] == ["app"]
    assert tools["export_image"].meta is None
    read = await apps.read_resource(VIEW_URI)
    assert read.contents[0].mime_type == "text/html;profile=mcp-app" and read.contents[0].text == view_html()


async def test_view_image_gives_the_record_and_a_display_jpeg_of_at_most_max_px(plain_and_apps):
    _, apps = plain_and_apps
    await apps.call_tool("imagine", {"prompt": "a red fox in snow"})
    result = await apps.call_tool("view_image", {"image": "fox-snow", "max_px": 300})
    sc = result.structured_content
    assert sc["name"] == "fox-snow" and sc["status"] == "completed" and sc["preview"] == "final"
    assert sc["uri"] == "mj://images/fox-snow"
    picture = next(c for c in result.content if c.type == "image")
    assert picture.mime_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(base64.b64decode(picture.data))).size) == 300
    missing = await apps.call_tool("view_image", {"image": "nope"})
    assert missing.is_error and "nope" in missing.content[0].text
