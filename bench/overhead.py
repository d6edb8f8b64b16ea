"""1. Per-call overhead: an imagine tool call through the server versus the same upstream request
made directly with httpx, against the simulator at zero delay, interleaved call by call.

The figure is the median of the per-iteration differences (tool call minus direct request), so a
noisy stretch of the machine hits both sides of a pair. In-process: the SDK client on the server
object, in both protocol eras (2026-07-28 direct dispatch, and 2025-11-25 JSON-RPC over memory
streams). Stdio: the SDK client on a ``python -m mj_mcp serve`` subprocess, whose upstream is the
same simulator.
"""

from __future__ import annotations

import time

import anyio

from . import common
from .common import Row, median, ms, say

TARGET_S = 0.002


async def _pairs(tool_call, http, n: int, warmup: int) -> tuple[list[float], list[float]]:
    direct, tool = [], []
    for i in range(warmup + n):
        order = (0, 1) if i % 2 else (1, 0)  # alternate which goes first
        took = [0.0, 0.0]
        for which in order:
            t0 = time.perf_counter()
            if which == 0:
                await common.direct_imagine(http, {**common.BODY, "prompt": common.prompt(i)})
            else:
                await tool_call(i)
            took[which] = time.perf_counter() - t0
        if i >= warmup:
            direct.append(took[0])
            tool.append(took[1])
    return direct, tool


def _report(label: str, direct: list[float], tool: list[float]) -> tuple[float, dict[str, float]]:
    diffs = [t - d for t, d in zip(tool, direct, strict=False)]
    extra = median(diffs)
    say(
        f"  {label:<28} direct {ms(median(direct))}  tool {ms(median(tool))}  extra {ms(extra)} "
        f"(n={len(diffs)}, ratio {median(tool) / median(direct):.2f}x)"
    )
    return extra, {"direct": median(direct), "tool": median(tool), "extra": extra}


async def run_async(quick: bool) -> list[Row]:
    from mcp import Client

    from mj_mcp.server import build_server

    n, warm = (30, 5) if quick else (300, 30)
    n_stdio = 20 if quick else 150
    rows: list[Row] = []
    say("[1] per-call overhead (zero-delay simulator; median of paired differences)")
    with common.thread_sim(time_scale=0.0) as sim:
        async with common.pooled_http(sim.base_url) as http:
            for mode in ("auto", "legacy"):
                async with Client(build_server(common.settings(sim.base_url)), mode=mode) as client:
                    direct, tool = await _pairs(common.imagine_call(client), http, n, warm)
                extra, _ = _report(f"in-process ({mode})", direct, tool)
                era = "2026-07-28" if mode == "auto" else "2025-11-25"
                figure = f"{extra * 1000:.2f} ms (direct {ms(median(direct))})"
                rows.append(Row(f"call overhead, in-process {era}", figure, "<= 2 ms", extra <= TARGET_S))
            async with Client(common.stdio_params(sim.base_url)) as client:
                direct, tool = await _pairs(common.imagine_call(client), http, n_stdio, warm)
            extra, _ = _report("stdio subprocess (auto)", direct, tool)
            rows.append(Row("call overhead, stdio", f"{extra * 1000:.2f} ms (direct {ms(median(direct))})", "report"))
    return rows


def run(quick: bool = False) -> list[Row]:
    return anyio.run(run_async, quick)


if __name__ == "__main__":
    import sys

    for row in run("--quick" in sys.argv):
        say(row)
