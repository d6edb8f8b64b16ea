"""4. Context cost: characters the model reads. The whole ``tools/list`` (as JSON, the way a host
forwards it), each tool's description and schemas, and the text of typical results. The list is the
2025-11-25 handshake's, the longest a client gets: it carries ``execution`` on the tools that run as
MCP tasks (2026-07-28's has none).

Results measured: an imagine grid, an upscaled single, an edit's four results, get_task on a running job,
two errors (an action the image does not offer, a refused flag), a describe, a shortened prompt and a
seed. The text block is what the model reads; the structured content is reported beside it for scale.
"""

from __future__ import annotations

import json

import anyio

from . import common
from .common import Row, say

TARGET_TOOLS = 10_000  # issue 18: every tool of both parts and of the tasks issue, titles and execution included
TARGET_IMAGINE = 400


def _chars(obj) -> int:
    return len(json.dumps(obj, ensure_ascii=False))


def _text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def run_async(quick: bool) -> list[Row]:
    from mcp import Client

    from mj_mcp.server import build_server

    rows: list[Row] = []
    say("[4] context cost (characters)")
    with common.thread_sim(time_scale=0.0) as sim:
        server = build_server(common.settings(sim.base_url))
        async with Client(server, mode="legacy") as handshake:
            listed = (await handshake.list_tools()).tools
        async with Client(server) as client:
            tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed]
            total = _chars(tools)
            say(f"  tools/list: {total} chars for {len(tools)} tools")
            say(f"    {'tool':<16}{'all':>7}{'descr':>7}{'input':>7}{'output':>8}")
            for t in tools:
                say(
                    f"    {t['name']:<16}{_chars(t):>7}{len(t.get('description', '')):>7}"
                    f"{_chars(t.get('inputSchema', {})):>7}{_chars(t.get('outputSchema', {})):>8}"
                )
            say(f"    room left for the tools to come: {TARGET_TOOLS - total} chars")
            rows.append(Row("tools/list", f"{total} chars", f"<= {TARGET_TOOLS}", total <= TARGET_TOOLS))

            results = {}
            grid = await client.call_tool("imagine", {"prompt": "a lighthouse on a cliff at dusk"})
            results["imagine (grid)"] = grid
            name = grid.structured_content["name"]
            results["apply_action upscale1"] = await client.call_tool(
                "apply_action", {"image": name, "action": "upscale1"}
            )
            results["error: action not offered"] = await client.call_tool(
                "apply_action", {"image": name, "action": "zoom_out_2x"}
            )
            results["error: bad flag"] = await client.call_tool("imagine", {"prompt": "a cat -c 50"})
            results["edit_image (4 results)"] = await client.call_tool(
                "edit_image", {"image": name, "prompt": "a lighthouse at noon"}
            )
            results["describe"] = await client.call_tool("describe", {"image": name})
            results["rewrite_prompt shorten"] = await client.call_tool(
                "rewrite_prompt", {"prompt": "a lighthouse on a cliff at dusk, ultra detailed, dramatic sky --ar 16:9"}
            )
            results["get_task seed"] = await client.call_tool("get_task", {"ref": name, "seed": True})
            # a job that is still running: a slow upstream, the call cut short, then get_task
            sim.state.configure(time_scale=1.0, start_delay_s=30.0)
            with anyio.move_on_after(0.5):
                await client.call_tool("imagine", {"prompt": "a slow glacier", "name": "slow-glacier"})
            results["get_task (running)"] = await client.call_tool("get_task", {"ref": "slow-glacier"})
            sim.state.configure(time_scale=0.0)
            say(f"    {'result':<28}{'text':>6}{'structured':>12}  text")
            for label, r in results.items():
                text = _text(r)
                say(f"    {label:<28}{len(text):>6}{_chars(r.structured_content or {}):>12}  {text[:90]!r}")
            imagine_text = len(_text(grid))
            rows.append(
                Row(
                    "imagine result text", f"{imagine_text} chars", f"< {TARGET_IMAGINE}", imagine_text < TARGET_IMAGINE
                )
            )
            for label in (
                "apply_action upscale1",
                "edit_image (4 results)",
                "get_task (running)",
                "error: action not offered",
                "describe",
                "rewrite_prompt shorten",
                "get_task seed",
            ):
                rows.append(Row(f"{label} result text", f"{len(_text(results[label]))} chars", "report"))
        rows.extend(await _video(sim))
    return rows


async def _video(sim) -> list[Row]:
    """A video's result as the model gets it by default (previews on): its text, its poster's bytes, and
    no clip's bytes (each is a link)."""
    from mcp import Client

    from mj_mcp.server import build_server

    sim.state.configure(time_scale=0.0)
    async with Client(build_server(common.settings(sim.base_url, preview_px=512))) as client:
        grid = await client.call_tool("imagine", {"prompt": "a lighthouse on a cliff at dusk"})
        name = grid.structured_content["name"]
        single = await client.call_tool("apply_action", {"image": name, "action": "upscale1"})
        video = await client.call_tool("animate", {"image": single.structured_content["name"], "prompt": "waves break"})
    text = _text(video)
    poster = sum(len(getattr(c, "data", "")) for c in video.content if c.type == "image")
    links = sum(c.type == "resource_link" for c in video.content)
    say(f"    {'animate (video)':<28}{len(text):>6}{_chars(video.structured_content or {}):>12}  {text[:90]!r}")
    say(f"    its poster: {poster:,} characters of base64 JPEG; {links} resource links, no clip bytes")
    return [
        Row("animate result text", f"{len(text)} chars", "report"),
        Row("animate poster (base64)", f"{poster} chars", "report"),
    ]


def run(quick: bool = False) -> list[Row]:
    return anyio.run(run_async, quick)


if __name__ == "__main__":
    import sys

    for row in run("--quick" in sys.argv):
        say(row)
