"""Soak: thousands of tool calls and hundreds of concurrent generations against a faulty simulator.

Not a test: it prints what happened. Faults are sprinkled at random on every upstream request (429s,
500s, streams cut after the task id, connections reset after the task was created, malformed lines,
failed tasks). At the end every task the simulator accepted must be final in the registry (answered
by get_task without asking upstream), no generation may have made two tasks, and memory must come
back down.

    python -m bench.soak [--generations 300] [--concurrency 200] [--reads 3000] [--time-scale 0.01]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio
import httpx
from mcp import Client
from pydantic import SecretStr

from bench.common import TOKEN, process_sim
from mj_mcp.server import build_server
from mj_mcp.settings import Settings

TASKS = "/midjourney/tasks"
FAULTS = [  # each independently, on every upstream request
    "flaky;p=0.05;fault2=429",
    "flaky;p=0.02;fault2=500",
    "flaky;p=0.03;fault2=stream_cut;after_lines=1",
    "flaky;p=0.02;fault2=stream_cut;after_lines=0",
    "flaky;p=0.02;fault2=reset;after_submit=1",
    "flaky;p=0.02;fault2=stream_malformed;line=1",
    "flaky;p=0.02;fault2=task_fail;at_progress=35",
]
WORDS = [
    "red",
    "fox",
    "lantern",
    "harbour",
    "castle",
    "meadow",
    "violin",
    "comet",
    "orchard",
    "glacier",
    "tiger",
    "canyon",
]


class Sim:
    """The simulator in a process of its own (``common.process_sim``), so that this process's memory
    is the server's alone and its PNG rendering runs on the other core; read through its control API."""

    def __init__(self, stack: contextlib.ExitStack, time_scale: float, seed: int) -> None:
        self.base_url = stack.enter_context(process_sim(time_scale=time_scale, faults=FAULTS, seed=seed))
        self.http = stack.enter_context(httpx.Client(base_url=self.base_url, timeout=30))

    def tasks(self) -> list[dict]:
        return self.http.get("/__fake/tasks").json()

    def requests(self, path: str) -> int:
        return len(self.http.get("/__fake/requests", params={"path": path}).json())


def rss_mb() -> float:
    """Resident memory now (Linux /proc), else the peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def soak(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    stack = contextlib.ExitStack()
    sim = Sim(stack, args.time_scale, args.seed)
    cache = tempfile.TemporaryDirectory(prefix="mj-soak-")
    settings = Settings(
        api_token=SecretStr(TOKEN),
        base_url=sim.base_url,
        simulate=True,
        heartbeat_s=0.5,
        retry_backoff_s=0.05,
        poll_interval_s=0.05,
        timeout_s=30,
        wait_s=30,
        cache_dir=Path(cache.name),
        preview_px=None if args.no_preview else 512,
        store="memory",
    )
    outcomes: Counter[str] = Counter()
    names: list[str] = []
    calls = 0
    before = rss_mb()
    started = time.perf_counter()
    try:
        async with Client(build_server(settings)) as client:

            async def tool(name: str, **arguments):
                nonlocal calls
                calls += 1
                result = await client.call_tool(name, arguments)
                sc = result.structured_content or {}
                if result.is_error:
                    text = result.content[0].text if result.content else ""
                    code = sc.get("error", {}).get("code") if sc else text.split(":")[0].split()[-1]
                    outcomes[f"{name} error {code}"] += 1
                else:
                    outcomes[f"{name} {sc.get('status', 'ok')}"] += 1
                return result, sc

            async def generate(i: int, limit: anyio.CapacityLimiter) -> None:
                async with limit:
                    done = [n for n in names if n]
                    if done and rng.random() < 0.4:
                        _, sc = await tool("apply_action", image=rng.choice(done), action=f"upscale{rng.randint(1, 4)}")
                    else:
                        prompt = f"a {rng.choice(WORDS)} and a {rng.choice(WORDS)} number {i}"
                        _, sc = await tool("imagine", prompt=prompt)
                    if sc.get("status") == "completed" and sc.get("kind") == "grid":
                        names.append(sc["name"])

            async def read(limit: anyio.CapacityLimiter) -> None:
                async with limit:
                    if names and rng.random() < 0.7:
                        await tool("get_task", ref=rng.choice(names))
                    else:
                        await tool("list_images", limit=20)

            in_flight = anyio.CapacityLimiter(args.concurrency)
            async with anyio.create_task_group() as tg:
                for i in range(args.generations):
                    tg.start_soon(generate, i, in_flight)
                for _ in range(args.reads):
                    tg.start_soon(read, in_flight)
            peak = rss_mb()
            wall = time.perf_counter() - started

            # Every task upstream accepted must be final in the registry: answered with no lookup.
            with anyio.fail_after(120):
                while any("finished_at" not in t for t in sim.tasks()):
                    await anyio.sleep(0.1)
            await anyio.sleep(1.0)
            lost = []
            task_ids = [t["id"] for t in sim.tasks()]
            lookups = sim.requests(TASKS)
            for task_id in task_ids:
                result, sc = await tool("get_task", ref=task_id)
                if sc.get("status") not in ("completed", "failed"):
                    lost.append(task_id)
            unknown = sim.requests(TASKS) - lookups  # get_task asks upstream only for what it does not know
            submits = sim.requests("/midjourney/imagine")
            tasks = len(task_ids)
    finally:
        stack.close()
        cache.cleanup()
    gc.collect()
    after = rss_mb()

    print(
        f"generations {args.generations} (at most {args.concurrency} at once), reads {args.reads}, "
        f"time scale {args.time_scale}",
        file=sys.stderr,
    )
    print(f"tool calls            {calls}")
    print(f"wall time             {wall:.1f} s ({calls / wall:.0f} calls/s)")
    print(f"upstream submits      {submits} (429s and refused connections are resent)")
    print(f"tasks upstream        {tasks}")
    print(f"tasks lost            {len(lost) + unknown} ({unknown} not in the registry, {len(lost)} not final)")
    print(f"tool errors           {sum(n for k, n in outcomes.items() if ' error ' in k)}")
    for key, n in sorted(outcomes.items()):
        print(f"  {key:32} {n}")
    print(f"RSS before/peak/after {before:.0f} / {peak:.0f} / {after:.0f} MB")
    return 1 if lost or unknown else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-preview", action="store_true", help="no thumbnails (images are still cached)")
    sys.exit(anyio.run(soak, parser.parse_args()))


if __name__ == "__main__":
    main()
