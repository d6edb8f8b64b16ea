"""7. The MCP App's budgets (issue 13): the view's HTML size; from reading the ``ui://`` resource to the
first painted image, in headless Chromium; from a button press to the tool call leaving the view.

The browser side is the tests' harness (``tests/viewhost.py``: Debian's Chromium driven by Playwright,
the test host on ext-apps' AppBridge under the spec's default CSP), against the real server in process
and the simulator at zero delay. Times are wall-clock epoch milliseconds on both sides (Python's clock,
the page's ``performance.timeOrigin``), so they compare across the host page and the view's frame.

- **first paint**: the clock starts before ``resources/read`` of the view; it stops at the Element
  Timing API's render time of the stage picture (``elementtiming="stage"``): the result's thumbnail,
  painted before the sharp rendition arrives. Each sample is a fresh host page and a fresh view.
- **press to call**: the click event's time in the view, to the host's receipt of the ``tools/call``
  the view sends (``apply_action``), so it includes the postMessage hop.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from typing import Any

from . import common
from .common import Row, median, pct, say

sys.path.insert(0, os.path.join(common.ROOT, "tests"))  # the browser harness lives with the tests

TARGET_BYTES = 200 * 1024
TARGET_PAINT_MS = 300.0
TARGET_PRESS_MS = 50.0

FIRST_PAINT = """() => new Promise((done) => new PerformanceObserver((list, observer) => {
  for (const e of list.getEntries()) if (e.identifier === "stage") {
    observer.disconnect();
    done(performance.timeOrigin + (e.renderTime || e.loadTime));
  }
}).observe({ type: "element", buffered: true }))"""
WATCH_PRESS = """() => document.addEventListener("click", (e) => {
  if (e.target.closest("button.act")) window.__pressAt = performance.timeOrigin + e.timeStamp;
}, true)"""


def html_size() -> Row:
    from mj_mcp.ui import view_html

    data = view_html().encode()
    figure = f"{len(data):,} bytes (gzip {len(gzip.compress(data, 9)):,})"
    say(f"  view.html: {figure}")
    return Row("MCP App view.html", figure, f"<= {TARGET_BYTES // 1024} KB", len(data) <= TARGET_BYTES)


async def _frame(page: Any) -> Any:
    return await (await page.query_selector("#frame")).content_frame()


async def browser_rows(quick: bool) -> list[Row]:
    from mcp import Client
    from mcp.client import advertise
    from playwright.async_api import async_playwright
    from viewhost import APPS_EXTENSION, CHROMIUM, CHROMIUM_ARGS, HOST_PAGE, ViewHost

    from mj_mcp.server import build_server

    n = 3 if quick else 15
    paints, presses = [], []
    with common.thread_sim(time_scale=0.0) as sim:
        server = build_server(common.settings(sim.base_url, preview_px=512))  # results carry their thumbnail
        async with Client(server, extensions=[advertise(*APPS_EXTENSION)]) as client, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 460, "height": 1000})
                host = ViewHost(page, client)
                await host.start()
                args = {"prompt": "a lighthouse on a cliff at dusk"}
                grid = await client.call_tool("imagine", args)
                for i in range(n + 1):  # the first round warms up the browser and the caches; not counted
                    await page.goto(HOST_PAGE.as_uri())
                    t0 = time.time() * 1000
                    await host.show("imagine", args, grid)
                    frame = await _frame(page)
                    painted = await frame.evaluate(FIRST_PAINT)
                    await frame.locator(".actions button.act").first.wait_for()
                    await frame.evaluate(WATCH_PRESS)
                    calls_before = len(await host.events("call"))
                    await frame.get_by_role("button", name="U1", exact=True).click()
                    await page.wait_for_function(
                        f"() => window.host.events.filter((e) => e.kind === 'call').length > {calls_before}")
                    call = (await host.events("call"))[calls_before]
                    pressed = await frame.evaluate("() => window.__pressAt")
                    if i:
                        paints.append(painted - t0)
                        presses.append(call["at"] - pressed)
                assert not host.problems(), host.problems()
            finally:
                await browser.close()
    say(f"  resource read -> first painted image: p50 {median(paints):.1f} ms, max {max(paints):.1f} ms (n={n})")
    say(f"  button press -> tool call leaving the view: p50 {median(presses):.2f} ms, "
        f"max {max(presses):.2f} ms (n={n})")
    return [
        Row("MCP App: resource read to first painted image",
            f"{median(paints):.0f} ms (p95 {pct(paints, 95):.0f}, n={n})", f"<= {TARGET_PAINT_MS:.0f} ms",
            pct(paints, 95) <= TARGET_PAINT_MS),
        Row("MCP App: button press to tool call", f"{median(presses):.1f} ms (p95 {pct(presses, 95):.1f}, n={n})",
            f"<= {TARGET_PRESS_MS:.0f} ms", pct(presses, 95) <= TARGET_PRESS_MS),
    ]


def run(quick: bool) -> list[Row]:
    import anyio

    say("[7] the MCP App (view size, first paint, press to call)")
    rows = [html_size()]
    from viewhost import missing

    why = missing()
    if why is not None:
        say(f"  browser figures skipped: {why} (run scripts/test-deps)")
        return [*rows, Row("MCP App: browser figures", f"skipped: {why}")]
    return rows + anyio.run(browser_rows, quick)
