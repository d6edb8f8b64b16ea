"""What the server says it does, it does: capabilities, resource subscriptions, completions, log
messages at the level asked for, and protocol errors, through real SDK clients in both eras."""

from __future__ import annotations

import anyio
import pytest
from conftest import settings_for
from mcp import Client, MCPError
from mcp.types import (
    PromptReference,
    ResourceTemplateReference,
    ResourceUpdatedNotification,
)
from support import PATIENCE

from mj_mcp.server import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["auto", "legacy"])
async def lean(request, fresh_sim):
    """A client in each era on a server that makes no thumbnails (they cost time, not coverage)."""
    async with Client(build_server(settings_for(fresh_sim, preview_px=None)), mode=request.param) as c:
        yield c


def slow(sim):
    """A job that outlives the call that starts it (3.3 s), so a client can subscribe after it, on a
    busy machine too."""
    sim.state.configure(time_scale=0.3)


async def test_handshake_capabilities_say_what_the_server_does(fresh_sim):
    async with Client(build_server(settings_for(fresh_sim)), mode="legacy") as c:
        caps = c.server_capabilities
        assert caps.resources.list_changed is True and caps.resources.subscribe is True
        assert caps.logging is not None and caps.completions is not None
        assert caps.prompts is None  # no prompts are offered, so none are declared


async def test_2026_capabilities_say_what_the_server_does(fresh_sim):
    async with Client(build_server(settings_for(fresh_sim))) as c:
        caps = c.server_capabilities
        assert caps.resources.list_changed is True and caps.resources.subscribe is True  # listen streams
        assert caps.tools.list_changed is False and caps.prompts is None and caps.completions is not None


async def test_the_server_has_one_icon_in_its_implementation_info_and_the_tools_none(lean):
    import base64
    import io

    from PIL import Image

    [icon] = lean.server_info.icons
    assert icon.mime_type == "image/png" and icon.sizes == ["64x64"] and icon.src.startswith("data:image/png;base64,")
    png = base64.b64decode(icon.src.removeprefix("data:image/png;base64,"))
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG" and picture.size == (64, 64)
    assert len(icon.src) < 4096  # every handshake carries it
    assert [t.name for t in (await lean.list_tools()).tools if t.icons] == []  # not repeated per tool


async def test_a_subscriber_hears_when_its_running_image_finishes(fresh_sim):
    updated = anyio.Event()
    seen: list[str] = []

    async def on_message(message):
        if isinstance(message, ResourceUpdatedNotification):
            seen.append(message.params.uri)
            updated.set()

    slow(fresh_sim)
    async with Client(build_server(settings_for(fresh_sim)), mode="legacy", message_handler=on_message) as c:
        r = await c.call_tool("imagine", {"prompt": "a slow sunrise", "wait_seconds": 0})
        assert r.structured_content["status"] == "running"
        uri = "mj://images/slow-sunrise"
        await c.subscribe_resource(uri)
        with anyio.fail_after(PATIENCE):
            await updated.wait()
        assert seen == [uri]
        r = await c.call_tool("get_task", {"ref": "slow-sunrise"})
        assert r.structured_content["status"] == "completed"


async def test_a_2026_listener_hears_when_its_running_image_finishes(fresh_sim):
    slow(fresh_sim)
    async with Client(build_server(settings_for(fresh_sim))) as c:
        assert c.protocol_version == "2026-07-28"
        uri = "mj://images/slow-moonrise"
        async with c.listen(resource_subscriptions=[uri]) as sub:
            r = await c.call_tool("imagine", {"prompt": "a slow moonrise", "wait_seconds": 0})
            assert r.structured_content["status"] == "running"
            with anyio.fail_after(PATIENCE):
                event = await sub.__anext__()
        assert getattr(event, "uri", None) == uri


async def test_completion_suggests_the_sessions_image_names_by_prefix_newest_first(lean):
    client = lean
    for prompt in ("a red fox", "a red barn", "a blue whale"):
        await client.call_tool("imagine", {"prompt": prompt})
    template = ResourceTemplateReference(type="ref/resource", uri="mj://images/{name}")
    done = await client.complete(template, {"name": "name", "value": "red"})
    assert done.completion.values == ["red-barn", "red-fox"] and done.completion.total == 2
    assert (await client.complete(template, {"name": "name", "value": "zebra"})).completion.values == []
    other = await client.complete(PromptReference(type="ref/prompt", name="nothing"), {"name": "x", "value": ""})
    assert other.completion.values == []


async def test_warnings_reach_the_client_at_the_level_it_asked_for(fresh_sim):
    """A preview that cannot be made is a warning: sent after logging/setLevel("warning"), not
    after setLevel("error"), and not to a client that never asked."""
    fresh_sim.state.configure(serve_images=False)
    for level, expected in ((None, 0), ("error", 0), ("warning", 1)):
        logs = []

        async def on_log(params, logs=logs):
            logs.append(params)

        server = build_server(settings_for(fresh_sim, preview_px=512))
        async with Client(server, mode="legacy", logging_callback=on_log) as c:
            if level:
                await c.set_logging_level(level)
            r = await c.call_tool("imagine", {"prompt": f"a vanishing comet {level}"})
            assert "preview unavailable" in r.content[0].text
        assert len(logs) == expected, (level, logs)
        if expected:
            assert logs[0].level == "warning" and "preview unavailable" in str(logs[0].data)


async def test_unknown_tools_and_prompts_are_protocol_errors(lean):
    client = lean
    with pytest.raises(MCPError) as tool:
        await client.call_tool("no_such_tool", {})
    assert tool.value.error.code == -32602 and "no_such_tool" in tool.value.error.message
    with pytest.raises(MCPError) as prompt:
        await client.get_prompt("no_such_prompt")
    assert prompt.value.error.code == -32602


async def test_an_unknown_resource_is_the_error_code_of_the_negotiated_revision(lean):
    """-32002 "Resource not found" as 2025-06-18 and 2025-11-25 say; -32602 from 2026-07-28 on (SEP-2164).
    Both an unknown name under the image template and a URI no template matches."""
    client = lean
    expected = -32602 if client.protocol_version >= "2026-07-28" else -32002
    for uri in ("mj://images/no-such-image", "mj://nothing/here"):
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
        assert caught.value.error.code == expected, (client.protocol_version, uri, caught.value.error)
        assert caught.value.error.data == {"uri": uri}
    with pytest.raises(MCPError, match="no image 'no-such-image'"):
        await client.read_resource("mj://images/no-such-image")


async def test_a_follower_that_gives_up_is_a_warning_for_a_client_that_asked(fresh_sim):
    fresh_sim.state.configure(time_scale=0.15)
    fresh_sim.state.inject("/midjourney/imagine", "stream_cut;after_lines=1", times=1)  # then polling
    logs, warned = [], anyio.Event()

    async def on_log(params):
        logs.append(params)
        warned.set()

    settings = settings_for(fresh_sim, follow_limit_s=0.05, preview_px=None)
    async with Client(build_server(settings), mode="legacy", logging_callback=on_log) as c:
        await c.set_logging_level("warning")
        r = await c.call_tool("imagine", {"prompt": "a quiet lake", "wait_seconds": 5})
        assert r.structured_content["status"] == "running"
        with anyio.fail_after(PATIENCE):
            await warned.wait()
    assert logs[0].level == "warning" and 'get_task("quiet-lake")' in str(logs[0].data)


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"])
def test_each_version_gets_the_unknown_resource_code_its_revision_says(version):
    from mj_mcp.server.protocol import resource_not_found_code

    assert resource_not_found_code(version) == (-32602 if version >= "2026-07-28" else -32002)


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"])
def test_each_version_gets_the_content_blocks_its_schema_has(version):
    from mj_mcp.server.protocol import content_for

    blocks = [{"type": t} for t in ("text", "image", "audio", "resource", "resource_link")]
    kept = [b["type"] for b in content_for(version, blocks)]
    expected = {"2024-11-05": ["text", "image", "resource"], "2025-03-26": ["text", "image", "audio", "resource"]}
    assert kept == expected.get(version, ["text", "image", "audio", "resource", "resource_link"])


async def test_a_2026_client_gets_the_resource_link(fresh_sim):
    async with Client(build_server(settings_for(fresh_sim, preview_px=None))) as c:
        assert c.protocol_version == "2026-07-28"
        r = await c.call_tool("imagine", {"prompt": "a copper kettle"})
        assert [b.type for b in r.content] == ["text", "resource_link"]
