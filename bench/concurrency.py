"""3. Concurrency: N generations at once (200), each taking about 2 s upstream, against one
generation alone; and the memory each in-flight generation costs.

The simulator runs in its own process (``mj-mcp sim``) so that neither its CPU nor its memory is
counted against the wrapper. 2 s upstream: a 0.5 s queue, then three progress lines 0.5 s apart.
Memory, divided by N: over stdio, the server process's resident-set growth (sampled every 20 ms
while the calls are in flight); in-process, the peak of Python allocations (tracemalloc, in a
separate untimed pass) of the server plus the SDK client, since RSS hardly moves in a process whose
heap earlier runs already grew.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import anyio

from . import common
from .common import Row, median, say

# Issue 21's targets: in-process over the 1.22x floor httpx alone set that day, stdio with its pipe, and
# previews on (each result downloads, thumbnails and keeps its image).
TARGETS = {"in-process": 1.25, "stdio": 1.35, "in-process, previews on": 2.0}
KNOBS = dict(time_scale=1.0, start_delay_s=0.5, step_interval_s=0.5, progress_steps=[35, 75, 100])


async def _one(client, i: int, failures: list) -> None:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    prompt = common.prompt(i, "a crowded harbour")
    r = await client.call_tool("imagine", {"prompt": prompt}, progress_callback=on_progress)
    if r.is_error:
        failures.append(r.content[0].text if r.content else "error")


async def _batch(client, n: int, pid: int | str) -> tuple[float, int, list]:
    """Wall time of n concurrent calls, the peak RSS growth meanwhile, and the failures."""
    failures: list = []
    base = common.rss_bytes(pid)
    peak = base
    done = anyio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, common.rss_bytes(pid))
            with anyio.move_on_after(0.02):
                await done.wait()

    async with anyio.create_task_group() as outer:
        outer.start_soon(sample)
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(_one, client, i, failures)
        wall = time.perf_counter() - t0
        done.set()
    return wall, peak - base, failures


async def _traced_batch(client, n: int) -> int:
    """Peak Python allocations while n calls are in flight, over the figure before them."""
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(_one, client, 20_000 + i, [])
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


async def _single(client, reps: int) -> float:
    walls = []
    for i in range(reps):
        t0 = time.perf_counter()
        await _one(client, 10_000 + i, [])
        walls.append(time.perf_counter() - t0)
    return median(walls)


async def run_async(quick: bool, n: int | None = None) -> list[Row]:
    from mcp import Client

    from mj_mcp.server import build_server

    n = n or (50 if quick else 200)
    reps = 2 if quick else 5
    rows: list[Row] = []
    say(f"[3] concurrency ({n} generations at once, each ~2 s upstream; simulator in its own process)")
    with common.process_sim(**KNOBS) as url, tempfile.TemporaryDirectory(prefix="mj-bench-cache-") as cache_dir:
        async with common.pooled_http(url) as http:
            # The same load straight through httpx: what the simulator (and loopback) alone cost.
            single, wall, failed = await common.direct_floor(http, n, reps)
            say(
                f"  direct httpx: single {single:.3f} s, {n} at once {wall:.3f} s, "
                f"ratio {wall / single:.3f}x (the floor the simulator sets; {failed} failed)"
            )
            rows.append(Row(f"{n} at once / one, direct httpx (floor)", f"{wall / single:.3f}x", "report"))
        for where in ("in-process", "stdio", "in-process, previews on"):
            if where == "stdio":
                target, pid_of = common.stdio_params(url), None
            else:
                # Previews on as a host runs them: with the image cache (the thumbnails and the full images kept).
                previews = {"preview_px": 512, "cache_dir": Path(cache_dir)} if "previews" in where else {}
                target, pid_of = build_server(common.settings(url, **previews)), "self"
            async with Client(target) as client:
                pid = pid_of or common.stdio_pid()
                await _one(client, -1, [])  # warm: imports, connections
                single = await _single(client, reps)
                cpu_before = common.cpu_seconds(common.SIM_PIDS[url]), common.cpu_seconds(pid)
                wall, grew, failures = await _batch(client, n, pid)
                cpu_sim = common.cpu_seconds(common.SIM_PIDS[url]) - cpu_before[0]
                cpu_server = common.cpu_seconds(pid) - cpu_before[1]
                after = await _single(client, 1)
                if where.startswith("in-process"):
                    # RSS says little in a process whose heap earlier runs already grew: count the
                    # Python allocations instead, in a separate, untimed pass (tracemalloc is slow).
                    grew = await _traced_batch(client, n)
            ratio = wall / single
            per = grew / n
            how = "RSS of the server process" if where == "stdio" else "Python heap of server + client, tracemalloc"
            say(
                f"  {where}: single {single:.3f} s, {n} at once {wall:.3f} s, ratio {ratio:.3f}x "
                f"(single again after: {after:.3f} s); +{grew / 1e6:.1f} MB = {per / 1024:.1f} KiB per "
                f"generation ({how}); failures {len(failures)}"
            )
            # Where the batch's CPU went: a ratio far over the floor on two cores is often the simulator's.
            say(
                f"    CPU over the batch: simulator {cpu_sim:.2f} s, server{' + client' if pid == 'self' else ''} "
                f"{cpu_server:.2f} s (wall {wall:.2f} s, {os.cpu_count()} CPUs)"
            )
            if failures:
                say(f"    first failure: {failures[0]}")
            target_ratio = TARGETS[where]
            rows.append(
                Row(
                    f"{n} at once / one, {where}",
                    f"{ratio:.3f}x ({wall:.2f} s vs {single:.2f} s)",
                    f"<= {target_ratio:g}x",
                    ratio <= target_ratio and not failures,
                )
            )
            if "previews" in where:
                continue
            rows.append(
                Row(
                    f"memory per in-flight generation, {where}",
                    f"{per / 1024:.0f} KiB ({'RSS' if where == 'stdio' else 'tracemalloc'})",
                    "report",
                )
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    return anyio.run(run_async, quick)


if __name__ == "__main__":
    import sys

    for row in run("--quick" in sys.argv):
        say(row)
