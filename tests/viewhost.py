"""The browser harness of the MCP App tests: headless Chromium (Debian's, driven by Playwright) with
the test host page (``app/build/host.html``, built on ext-apps' ``AppBridge``), whose tool calls
and resource reads go to a real MCP client on the real server, against the simulator.

A missing part (Chromium, Playwright, the built host page) fails the tests with the command that installs
it: the README's test command runs it first, so nothing is ever skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST_PAGE = ROOT / "app" / "build" / "host.html"
CHROMIUM = os.environ.get("MJ_MCP_CHROMIUM", "/usr/bin/chromium")
# The flags that work on these machines: no sandbox as root, nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APPS_EXTENSION = ("io.modelcontextprotocol/ui", {"mimeTypes": ["text/html;profile=mcp-app"]})


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Python playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM}"
    if not HOST_PAGE.exists():
        return "app/build/host.html is not built"
    return None


def require_browser() -> None:
    why = missing()
    if why is None:
        return
    pytest.fail(f"{why}: run scripts/test-deps (the README's test command does)")


def jsonable(result: Any) -> dict[str, Any]:
    """A tool result as it travels on the wire (camelCase, no nulls)."""
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


class ViewHost:
    """One page of the test host, its view's calls answered by ``client``."""

    def __init__(self, page: Any, client: Any) -> None:
        self.page = page
        self.client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[tuple[str, dict[str, Any] | None]] = []  # (tool, structuredContent) as answered
        self.reads: list[str] = []  # the resources the view read through the host
        self.console: list[str] = []
        self.requests: list[str] = []

    async def start(self) -> None:
        async def mcp_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((name, args))
            result = await self.client.call_tool(name, args)
            self.answers.append((name, result.structured_content))
            return jsonable(result)

        async def mcp_read(uri: str) -> dict[str, Any]:
            self.reads.append(uri)
            return jsonable(await self.client.read_resource(uri))

        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        await self.page.expose_function("mcpCall", mcp_call)
        await self.page.expose_function("mcpRead", mcp_read)
        await self.page.goto(HOST_PAGE.as_uri())

    async def show(self, tool: str, args: dict[str, Any], result: Any = None, **options: Any) -> None:
        """Render the view as a host does for a call of ``tool`` with ``args`` that gave ``result``."""
        from mj_mcp.ui import VIEW_URI

        html = (await self.client.read_resource(VIEW_URI)).contents[0].text
        payload = {"html": html, "tool": tool, "input": args, **options}
        if result is not None:
            payload["result"] = jsonable(result)
        await self.page.evaluate("(o) => window.host.show(o)", payload)

    async def result(self, result: Any) -> None:
        """Deliver the result of the call the view was opened for (a host sends it when the call ends)."""
        await self.page.evaluate("(r) => window.host.result(r)", jsonable(result))

    @property
    def view(self) -> Any:
        """The view's frame (inside the host page's iframe)."""
        return self.page.frame_locator("#frame")

    async def events(self, kind: str) -> list[dict[str, Any]]:
        return await self.page.evaluate("(k) => window.host.events.filter((e) => e.kind === k)", kind)

    async def snap(self, name: str) -> None:
        """With MJ_MCP_SCREENSHOTS=<dir>, save the host page as <dir>/<name>.png (the README's pictures)."""
        where = os.environ.get("MJ_MCP_SCREENSHOTS")
        if where:
            await self.page.locator("#frame").screenshot(path=str(Path(where) / f"{name}.png"))

    def problems(self) -> list[str]:
        """Console errors (a CSP violation is one) and any request that left the page."""
        errors = [line for line in self.console if line.startswith(("error", "pageerror"))]
        remote = [url for url in self.requests if not url.startswith(("file:", "data:", "about:"))]
        return errors + [f"request: {url}" for url in remote]
