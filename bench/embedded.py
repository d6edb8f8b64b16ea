"""8. A desktop day on the embedded simulator: the memory of ``mj-mcp serve`` with no token after 90
grids and 90 upscales, what videos add to it, and what a simulated MP4 costs.

What a new user runs: a stdio server started by a host, no API token (so the simulator runs in the
server's process), the default SQLite store and image cache (in a temporary data dir), previews on.
An SDK client makes one grid, then upscales one of its quadrants, 90 times, one call after another.
The figure is the resident memory of the server and of every process it started (its whole process
tree, from /proc), after the first 10 pairs and after all 90, and the peak sampled meanwhile.

No tool makes a video yet, so the videos run against the embedded simulator alone, configured as the
server's lifespan configures it (embedded, an archive, the same render cache), in a process of its own:
the same 90 pairs (each image fetched once, as the server does), then 40 videos from the upscales (720p
and 480p, square and 16:9, 10 of them extensions), each clip and cover fetched once. What the videos add
to that process's memory is added to the server's figure. The MP4 rows: the size of a clip (24 frames)
and the time from its first GET to its last byte, drawing and encoding included (the median; the very
first clip also loads PyAV, shown apart).

    python -m bench --only embedded          # or: python -m bench.embedded [--pairs 90]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
        env = common.server_env(
            None,
            MJ_MCP_STORE=f"sqlite:///{home}/data/mj-mcp.db",
            MJ_MCP_CACHE_DIR=f"{home}/cache",
            MJ_MCP_EXPORT_DIR=f"{home}/exports",
            MJ_MCP_SIM_TIME_SCALE="0",
            MJ_MCP_PREVIEW="512",
        )
        params = StdioServerParameters(
            command=common.SERVER_CMD[0], args=common.SERVER_CMD[1:], env=env, cwd=common.ROOT
        )
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


VIDEOS = 40
# The simulator as the server's lifespan starts it, in a process of its own; it prints its URL and
# serves until its standard input closes.
_EMBEDDED_SIM = """
import sys
from mj_mcp.sim import SimConfig, SimServer
token, archive, cache_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
sim = SimServer(SimConfig(tokens=[token], time_scale=0, embedded=True, archive=archive,
                          render_cache_mb=cache_mb)).start()
print(sim.base_url, flush=True)
sys.stdin.read()
sim.stop()
"""


@contextmanager
def embedded_sim(home: str) -> Iterator[tuple[int, str]]:
    """(pid, base URL) of an embedded simulator in its own process."""
    from mj_mcp.studio import EMBEDDED_RENDER_CACHE_MB

    proc = subprocess.Popen(
        [sys.executable, "-c", _EMBEDDED_SIM, common.TOKEN, f"{home}/sim.db", str(EMBEDDED_RENDER_CACHE_MB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=common.ROOT,
    )
    try:
        assert proc.stdout is not None
        yield proc.pid, proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def video_day(pairs: int, videos: int) -> dict[str, Any]:
    """The simulator alone: RSS after ``pairs`` grid + upscale pairs, then after ``videos`` videos;
    the size and fetch time of each clip by its frame size."""
    import httpx

    from mj_mcp.sim import PUBLIC_ORIGIN

    with tempfile.TemporaryDirectory(prefix="mj-bench-video-") as home, embedded_sim(home) as (pid, url):
        http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {common.TOKEN}"}, timeout=120)

        def fetch(public: str) -> tuple[bytes, float]:
            t0 = time.perf_counter()
            body = http.get(url + public[len(PUBLIC_ORIGIN) :]).raise_for_status().content
            return body, time.perf_counter() - t0

        def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            return http.post(path, json=body).raise_for_status().json()

        peak = 0
        singles = []
        for i in range(pairs):
            # every fourth a wide one, so that some videos are 16:9 (its 720p clips are 1280x720)
            ar = " --ar 16:9" if i % 4 == 2 else ""
            grid = call("/midjourney/imagine", {"prompt": common.prompt(i, "a harbour at dawn") + ar})
            fetch(str(grid["raw_image_url"]))
            single = call("/midjourney/imagine", {"action": f"upscale{i % 4 + 1}", "image_id": grid["image_id"]})
            fetch(str(single["raw_image_url"]))
            singles.append(single)
            peak = max(peak, common.rss_bytes(pid))
        before = common.rss_bytes(pid)
        clips: dict[tuple[int, int, int], list[tuple[int, float]]] = {}
        first: float | None = None
        made: list[dict[str, Any]] = []
        for v in range(videos):
            frames = 48 if v % 4 == 3 and made else 24
            if frames == 48:
                body: dict[str, Any] = {"action": "extend", "video_id": made[-1]["video_id"], "video_index": v % 4}
            else:
                body = {
                    "image_url": singles[v % len(singles)]["raw_image_url"],
                    "prompt": "the tide comes in",
                    "resolution": "480p" if v % 2 else "720p",
                }
            video = call("/midjourney/videos", body)
            made.append(video)
            fetch(str(video["image_url"]))
            for clip_url in video["video_urls"]:
                data, took = fetch(str(clip_url))
                if first is None:
                    first = took
                    continue
                size = (int(video["image_width"]), int(video["image_height"]), frames)
                clips.setdefault(size, []).append((len(data), took))
                peak = max(peak, common.rss_bytes(pid))
        after = common.rss_bytes(pid)
        return {"before": before, "after": after, "peak": max(peak, after), "clips": clips, "first": first}


def run(quick: bool = False, pairs: int | None = None) -> list[Row]:
    pairs = pairs or (EARLY if quick else PAIRS)
    say(
        f"[8] embedded simulator: RSS of the stdio server's process tree, {pairs} grids + {pairs} upscales, "
        "previews on, default SQLite store"
    )
    early, after, peak, wall = anyio.run(day, pairs)
    mib = 1024 * 1024
    say(
        f"  after {min(EARLY, pairs)} pairs {early / mib:.0f} MiB; after {pairs} pairs {after / mib:.0f} MiB; "
        f"peak {peak / mib:.0f} MiB ({wall:.0f} s)"
    )
    rows = [
        Row(
            f"embedded simulator, RSS after {pairs} grids + {pairs} upscales",
            f"{after / mib:.0f} MiB (peak {peak / mib:.0f}, {early / mib:.0f} after {min(EARLY, pairs)})",
            f"<= {TARGET_MIB} MiB",
            after <= TARGET_MIB * mib and peak <= TARGET_MIB * mib,
        )
    ]
    videos = 4 if quick else VIDEOS
    say(f"[8] embedded simulator alone: {pairs} pairs, then {videos} videos (their clips and covers fetched once)")
    day2 = video_day(pairs, videos)
    before, after_v, peak_v = day2["before"], day2["after"], day2["peak"]
    added = max(0, after_v - before)
    say(
        f"  simulator after the pairs {before / mib:.0f} MiB; after the videos {after_v / mib:.0f} MiB "
        f"(peak {peak_v / mib:.0f}): videos add {added / mib:.0f} MiB"
    )
    total = after + added
    rows.append(
        Row(
            f"embedded simulator, RSS after {pairs} + {pairs} and {videos} videos (server + what videos add)",
            f"{total / mib:.0f} MiB ({after / mib:.0f} + {added / mib:.0f})",
            f"<= {TARGET_MIB} MiB",
            total <= TARGET_MIB * mib,
        )
    )
    clips: dict[tuple[int, int, int], list[tuple[int, float]]] = day2["clips"]
    for (w, h, frames), measured in sorted(clips.items(), key=lambda kv: (kv[0][2], -kv[0][0] * kv[0][1])):
        kib = statistics.median(m[0] for m in measured) / 1024
        ms = statistics.median(m[1] for m in measured) * 1000
        say(
            f"  MP4 clip {w}x{h}, {frames} frames: {kib:.0f} KiB, {ms:.0f} ms to make and fetch "
            f"(median of {len(measured)})"
        )
        rows.append(
            Row(
                f"simulated MP4 clip {w}x{h}, {frames} frames: size, time to make",
                f"{kib:.0f} KiB, {ms:.0f} ms (median of {len(measured)})",
            )
        )
    first = day2["first"]
    if isinstance(first, float):
        say(f"  the first clip, loading PyAV too: {first * 1000:.0f} ms")
    return rows


if __name__ == "__main__":
    n = int(sys.argv[sys.argv.index("--pairs") + 1]) if "--pairs" in sys.argv else None
    for row in run("--quick" in sys.argv, n):
        say(row)
