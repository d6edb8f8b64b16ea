"""2. Progress latency: from the simulator writing an ndjson line to the client's progress callback.

The simulator runs in a thread of this process and stamps each line with ``time.perf_counter()``
as it hands it to the socket (``SimState.line_stamps``); the client stamps each progress callback.
Lines are paced (``step_interval``) so each is its own event. A callback is matched to the line
with the same upstream progress in the same call (the message says ``generating N%``, and the
final ``done`` is the 100 line); heartbeats (``waiting for upstream``) are not upstream-caused and
are left out. A line whose change was folded into a later one before the follower woke has no
callback of its own: those are counted as coalesced.
"""

from __future__ import annotations

import re
import time

import anyio

from . import common
from .common import Row, median, pct, say

TARGET_P99_S = 0.005
STEP_S = 0.02  # wall seconds between lines
STEPS = list(range(5, 101, 5))  # 20 lines a generation
_GENERATING = re.compile(r": generating (\d+)%$")


async def _measure(client, sim, calls: int) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    coalesced = heartbeats = 0
    for i in range(calls):
        seen: list[tuple[str, float]] = []

        async def on_progress(
            progress: float, total: float | None, message: str | None, seen: list[tuple[str, float]] = seen
        ) -> None:
            seen.append((message or "", time.perf_counter()))

        sim.state.line_stamps = stamps = []
        prompt = common.prompt(i, "a slow tide")
        r = await client.call_tool("imagine", {"prompt": prompt}, progress_callback=on_progress)
        sim.state.line_stamps = None
        assert not r.is_error, r.content
        task_id = r.structured_content["task_id"]
        written = {int(p): t for tid, p, t in stamps if tid == task_id and p is not None}
        matched = 0
        for message, t in seen:
            m = _GENERATING.search(message)
            p = int(m.group(1)) if m else 100 if message.endswith(": done") else None
            if p is None:
                heartbeats += 1
                continue
            if p in written:
                latencies.append(t - written[p])
                matched += 1
        coalesced += len(written) - matched
    return latencies, coalesced, heartbeats


async def run_async(quick: bool) -> list[Row]:
    from mcp import Client

    from mj_mcp.server import build_server

    calls = 3 if quick else 30
    rows: list[Row] = []
    say(
        f"[2] progress latency (sim line written -> client callback; {len(STEPS)} lines per generation, "
        f"{STEP_S * 1000:.0f} ms apart)"
    )
    # perf_counter is CLOCK_MONOTONIC: the stdio server's own process does not matter, the stamps are
    # both taken here (the simulator's thread, the client's callback).
    with common.thread_sim(time_scale=1.0, start_delay_s=0.0, step_interval_s=STEP_S, progress_steps=STEPS) as sim:
        for mode in ("auto", "legacy", "stdio"):
            in_process = build_server(common.settings(sim.base_url))
            target = common.stdio_params(sim.base_url) if mode == "stdio" else in_process
            async with Client(target, mode="auto" if mode == "stdio" else mode) as client:
                lat, coalesced, beats = await _measure(client, sim, calls)
            era = {"auto": "in-process 2026-07-28", "legacy": "in-process 2025-11-25", "stdio": "stdio"}[mode]
            p50, p99, worst = median(lat), pct(lat, 99), max(lat) if lat else float("nan")
            say(
                f"  {era}: n={len(lat)} p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  "
                f"max {worst * 1000:.2f} ms  coalesced {coalesced}  heartbeats {beats}"
            )
            figure = f"{p99 * 1000:.2f} ms (p50 {p50 * 1000:.2f} ms, n={len(lat)})"
            rows.append(Row(f"progress latency p99, {era}", figure, "<= 5 ms", p99 <= TARGET_P99_S))
    return rows


def run(quick: bool = False) -> list[Row]:
    return anyio.run(run_async, quick)


if __name__ == "__main__":
    import sys

    for row in run("--quick" in sys.argv):
        say(row)
