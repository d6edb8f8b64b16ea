"""``mj-mcp demo``: a scripted tour through a real MCP client session over stdio, on the simulator.

It starts ``mj-mcp serve --sim`` as a subprocess, exactly as an MCP host would, then imagines,
upscales a quadrant, zooms out, repaints a region, blends two results, describes one (four prompts) and
animates the upscale into four short clips, drawing a progress bar per generation, and saves the final
PNGs, the prompts (a .txt) and one clip (MP4). This is a client program, so it prints to stdout.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.shared.dispatcher import ProgressFnT
from mcp.types import BlobResourceContents, TextContent, TextResourceContents

from .core.operations import ANIMATE, APPLY_ACTION, BLEND, DESCRIBE, IMAGINE, INPAINT_REGION

BAR = 30


def _bar(label: str) -> ProgressFnT:
    tty = sys.stdout.isatty()
    last = [-1]

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pct = int(progress * 100 / (total or 100))
        if not tty and pct // 25 == last[0] // 25:
            return  # in a log, one line per quarter is enough
        last[0] = pct
        filled = BAR * pct // 100
        line = f"  {label:<10} [{'#' * filled}{'.' * (BAR - filled)}] {pct:3d}%  {(message or '')[:48]}"
        print(("\r" + line.ljust(100)) if tty else line, end="" if tty else "\n", flush=True)

    return on_progress


async def _call(client: Client, label: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args, progress_callback=_bar(label))
    if sys.stdout.isatty():
        print()
    text = next((c.text for c in result.content if isinstance(c, TextContent)), "")
    if result.is_error or not result.structured_content:
        raise SystemExit(f"{tool} failed: {text}")
    print(f"  -> {text}")
    return dict(result.structured_content)


async def _blob(client: Client, uri: str, missing: str) -> bytes:
    """A binary resource's bytes, read while the server is still running."""
    read = await client.read_resource(uri)
    blob = next((c.blob for c in read.contents if isinstance(c, BlobResourceContents)), None)
    if blob is None:
        raise SystemExit(missing)
    return base64.b64decode(blob)


async def tour(out: str = "mj-demo") -> int:
    env = {k: v for k, v in os.environ.items() if k.startswith(("MJ_MCP_", "PATH", "HOME", "PYTHON"))}
    env.pop("ACEDATACLOUD_API_TOKEN", None)
    env.setdefault("MJ_MCP_STORE", "memory")  # a tour of its own: the user's workspace keeps nothing of it
    params = StdioServerParameters(command=sys.executable, args=["-m", "mj_mcp", "serve", "--sim"], env=env)
    print("mj-mcp demo: a real MCP session over stdio, against the embedded simulator (images are simulated)")
    async with Client(params) as client:
        grid = await _call(
            client, "imagine", IMAGINE, {"prompt": "Lamborghini speeds inside a volcano", "aspect_ratio": "16:9"}
        )
        single = await _call(client, "upscale", APPLY_ACTION, {"image": grid["name"], "action": "upscale2"})
        zoomed = await _call(client, "zoom out", APPLY_ACTION, {"image": single["name"], "action": "zoom_out_2x"})
        region = {"shape": "ellipse", "box": [0.3, 0.3, 0.7, 0.7]}
        painted = await _call(
            client,
            "repaint",
            INPAINT_REGION,
            {"image": single["name"], "region": region, "prompt": "a glowing phoenix"},
        )
        blended = await _call(client, "blend", BLEND, {"images": [zoomed["name"], painted["name"]]})
        # Midjourney's four prompts for a picture, each ready for imagine; kept as text under a name.
        words = await _call(client, "describe", DESCRIBE, {"image": single["name"]})
        video = await _call(
            client,
            "animate",
            ANIMATE,
            {"image": single["name"], "prompt": "the car bursts out of the lava", "resolution": "480p"},
        )
        # Each picture is the resource mj://images/<name>, read while the server is still running (the
        # simulator's URLs name an origin only the server reaches).
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        read = await client.read_resource(f"mj://images/{words['name']}")
        text = next((c.text for c in read.contents if isinstance(c, TextResourceContents)), None)
        if text is None:
            raise SystemExit(f"no texts for {words['name']}")
        path = folder / f"{words['name']}.txt"
        path.write_text(text, encoding="utf-8")
        print(f"saved {path} ({len(words['prompts'])} prompts)")
        for record in (grid, single, zoomed, painted, blended):
            path = folder / f"{record['name']}.png"
            path.write_bytes(await _blob(client, f"mj://images/{record['name']}", f"no image for {record['name']}"))
            print(f"saved {path} ({record['raw_width']}x{record['raw_height']})")
        # A video's clips are resources of their own (the model saw only their poster): the first one.
        path = folder / f"{video['name']}-1.mp4"
        path.write_bytes(await _blob(client, video["clips"][0], f"no clip for {video['name']}"))
        print(f"saved {path} (clip 1 of 4, {video['width']}x{video['height']})")
    return 0
