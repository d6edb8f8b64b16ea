"""One end-to-end session with an old Python SDK (mcp 1.9.4, protocol 2025-03-26) that this project
did not write: initialize, imagine with progress, upscale by name, resources list and read (and an
unknown one).

    python session.py <url>

Runs in its own venv (see requirements.txt beside it). Prints one JSON line with what the client
saw; exits 1 when any step raises, so the caller sees the client's own error text.
"""

import base64
import json
import sys
import traceback
from datetime import timedelta

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl


async def main(url: str) -> dict:
    seen: dict = {"sdk": "python mcp 1.9.4", "steps": [], "notifications": []}

    async def on_message(message) -> None:  # notifications, as the session receives them
        root = getattr(message, "root", None)
        if root is not None and hasattr(root, "method"):
            seen["notifications"].append(root.method)

    async with streamablehttp_client(url) as (read, write, _), ClientSession(
            read, write, message_handler=on_message, read_timeout_seconds=timedelta(seconds=60)) as session:
        init = await session.initialize()
        seen["protocolVersion"] = init.protocolVersion
        seen["capabilities"] = init.capabilities.model_dump(exclude_none=True)
        seen["steps"].append({"name": "initialize"})

        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None = None) -> None:
            progress.append(value)

        grid = await session.call_tool("imagine", {"prompt": "a lighthouse in a storm"}, progress_callback=on_progress)
        name = (grid.structuredContent or {}).get("name")
        seen["steps"].append({"name": "imagine", "isError": grid.isError, "image": name,
                              "content": [c.type for c in grid.content], "progress": progress})
        if grid.isError or not name:
            raise RuntimeError(f"imagine failed: {grid.content}")

        upscaled = await session.call_tool("apply_action", {"image": name, "action": "upscale2"})
        child = (upscaled.structuredContent or {}).get("name")
        seen["steps"].append({"name": "upscale", "isError": upscaled.isError, "image": child,
                              "content": [c.type for c in upscaled.content]})
        if upscaled.isError or not child:
            raise RuntimeError(f"upscale failed: {upscaled.content}")

        listed = await session.list_resources()
        seen["steps"].append({"name": "resources/list", "names": [r.name for r in listed.resources]})
        uri = next((r.uri for r in listed.resources if r.name == child), None)
        if uri is None:
            raise RuntimeError(f"{child} is not in resources/list")
        read_result = await session.read_resource(uri)
        blob = read_result.contents[0]
        seen["steps"].append({"name": "resources/read", "uri": str(uri), "mimeType": blob.mimeType,
                              "bytes": len(base64.b64decode(getattr(blob, "blob", "") or ""))})
        try:  # an unknown resource: a JSON-RPC error, whose code each revision names
            await session.read_resource(AnyUrl("mj://images/no-such-image"))
            unknown: dict = {"code": None}
        except McpError as exc:
            unknown = {"code": exc.error.code, "message": exc.error.message[:200]}
        seen["steps"].append({"name": "resources/read unknown", **unknown})
    return seen


if __name__ == "__main__":
    try:
        out = anyio.run(main, sys.argv[1])
        out["ok"] = True
    except BaseException:  # an ExceptionGroup from the transport's task group included
        out = {"ok": False, "error": traceback.format_exc()[-2000:]}
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)
