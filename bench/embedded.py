"""8. A desktop day on the embedded simulator: the memory of ``mj-mcp serve`` with no token after 90
grids and 90 upscales.

What a new user runs: a stdio server started by a host, no API token (so the simulator runs in the
server's process), the default SQLite store and image cache (in a temporary data dir), previews on.
An SDK client makes one grid, then upscales one of its quadrants, 90 times, one call after another.
The figure is the resident memory of the server and of every process it started (its whole process
tree, from /proc), after the first 10 pairs and after all 90, and the peak sampled meanwhile.

    python -m bench --only embedded          # or: python -m bench.embedded [--pairs 90]
"""

from __future__ import annotations

import sys
import tempfile
import time

import anyio

from . import common
from .common import Row, say

TARGET_MIB = 200
PAIRS = 90
EARLY = 10


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    return sum(common.rss_bytes(p) for p in [pid, *common.descendants(pid)])


async def day(pairs: int) -> tuple[int, int, int, float]:
    """(RSS after EARLY pairs, after all, peak; wall seconds) of one simulated day."""
    from mcp import Client, StdioServerParameters

    with tempfile.TemporaryDirectory(prefix="mj-bench-embedded-") as home:
        env = common.server_env(None, MJ_MCP_STORE=f"sqlite:///{home}/data/mj-mcp.db",
                                MJ_MCP_CACHE_DIR=f"{home}/cache", MJ_MCP_EXPORT_DIR=f"{home}/exports",
                                MJ_MCP_SIM_TIME_SCALE="0", MJ_MCP_PREVIEW="512")
        params = StdioServerParameters(command=common.SERVER_CMD[0], args=common.SERVER_CMD[1:], env=env,
                                       cwd=common.ROOT)
        early = peak = 0
        t0 = time.perf_counter()
        async with Client(params) as client:
            pid = common.stdio_pid()
            done = anyio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, tree_rss(pid))
                    with anyio.move_on_after(0.1):
                        await done.wait()

            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                for i in range(pairs):
                    grid = await client.call_tool("imagine", {"prompt": common.prompt(i, "a harbour at dawn")})
                    name = (grid.structured_content or {}).get("name")
                    assert not grid.is_error and name, grid.content
                    single = await client.call_tool("apply_action", {"image": name, "action": f"upscale{i % 4 + 1}"})
                    assert not single.is_error, single.content
                    if i + 1 == min(EARLY, pairs):
                        early = tree_rss(pid)
                done.set()
            after = tree_rss(pid)
        return early, after, max(peak, after), time.perf_counter() - t0


def run(quick: bool = False, pairs: int | None = None) -> list[Row]:
    pairs = pairs or (EARLY if quick else PAIRS)
    say(f"[8] embedded simulator: RSS of the stdio server's process tree, {pairs} grids + {pairs} upscales, "
        "previews on, default SQLite store")
    early, after, peak, wall = anyio.run(day, pairs)
    mib = 1024 * 1024
    say(f"  after {min(EARLY, pairs)} pairs {early / mib:.0f} MiB; after {pairs} pairs {after / mib:.0f} MiB; "
        f"peak {peak / mib:.0f} MiB ({wall:.0f} s)")
    return [Row(f"embedded simulator, RSS after {pairs} grids + {pairs} upscales",
                f"{after / mib:.0f} MiB (peak {peak / mib:.0f}, {early / mib:.0f} after {min(EARLY, pairs)})",
                f"<= {TARGET_MIB} MiB", after <= TARGET_MIB * mib and peak <= TARGET_MIB * mib)]


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--pairs") + 1]) if "--pairs" in sys.argv else None
    for row in run("--quick" in sys.argv, n):
        say(row)
