"""Shared pieces of the benchmarks: simulators, settings, statistics, memory, and the result rows.

Every figure is a median (or a percentile) over many samples, and every comparison is measured
side by side in one run (interleaved), because these machines are shared and noisy.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio

TOKEN = "bench-token-6d1f0c8a"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CMD = [sys.executable, "-m", "mj_mcp", "serve"]
BODY = {"action": "generate", "prompt": "a lighthouse on a cliff at dusk", "mode": "fast"}


@dataclass
class Row:
    """One line of the summary table."""

    metric: str
    figure: str
    target: str = ""
    ok: bool | None = None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("pass" if self.ok else "FAIL")


def prompt(i: int, text: str = "a lighthouse on a cliff at dusk") -> str:
    """A prompt whose derived name is new for every ``i``, as in real use: the same prompt N times
    makes names base-2 .. base-N, found by a linear probe (registry.Workspace._unique)."""
    return f"{text}, take{i:06d}"


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pct(xs: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: no interpolation that flatters a tail."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def sim_config(**knobs: Any):
    from mj_mcp.sim import SimConfig

    return SimConfig(tokens=[TOKEN], **knobs)


@contextlib.contextmanager
def thread_sim(**knobs: Any) -> Iterator[Any]:
    """The simulator in a thread of this process (the tests' arrangement); ``time_scale=0`` is zero delay."""
    from mj_mcp.sim import SimServer

    sim = SimServer(sim_config(**knobs)).start()
    try:
        yield sim
    finally:
        sim.stop()


# The process of each running ``process_sim`` by its base URL: a bench reads its CPU time.
SIM_PIDS: dict[str, int] = {}


@contextlib.contextmanager
def process_sim(**knobs: Any) -> Iterator[str]:
    """The simulator in its own process (``mj-mcp sim``), so it shares neither the GIL nor the memory
    figures of the process measured; knobs are set through its control API. Yields the base URL (its
    process id in ``SIM_PIDS``)."""
    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "mj_mcp", "sim", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        url = None
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on (http://\S+)", line)
            url = m.group(1) if m else None
        if url is None:
            raise RuntimeError("the simulator process did not start")
        # Keep reading its stderr: a long run's warnings would otherwise fill the pipe and stall it.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        r = httpx.post(f"{url}/__fake/reset", json={"tokens": [TOKEN], **knobs}, timeout=10)
        r.raise_for_status()
        SIM_PIDS[url] = proc.pid
        yield url
    finally:
        SIM_PIDS.pop(url or "", None)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def settings(base_url: str, **overrides: Any):
    from pydantic import SecretStr

    from mj_mcp.settings import Settings

    # Previews off: a thumbnail means downloading the image, which the simulator renders on these
    # same two cores (a CDN would not); concurrency.py measures the previews-on case on its own row.
    values: dict[str, Any] = dict(
        api_token=SecretStr(TOKEN), base_url=base_url, simulate=True, timeout_s=60.0, preview_px=None, store="memory"
    )
    values.update(overrides)
    return Settings(**values)


def server_env(base_url: str | None, **extra: str) -> dict[str, str]:
    """The environment a host gives the stdio server: with a base URL, the token and that upstream;
    without, no token (the embedded simulator)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "VIRTUAL_ENV")}
    env.setdefault("MJ_MCP_STORE", "memory")
    if base_url is not None:
        env.update(ACEDATACLOUD_API_TOKEN=TOKEN, ACEDATACLOUD_API_BASE_URL=base_url)
    env.update(MJ_MCP_PREVIEW="off")  # as in settings(): the wrapper's own cost, not the simulator's PNGs
    env.update(extra)
    return env


def stdio_params(base_url: str | None, **extra: str):
    from mcp import StdioServerParameters

    return StdioServerParameters(
        command=SERVER_CMD[0], args=SERVER_CMD[1:], env=server_env(base_url, **extra), cwd=ROOT
    )


def cpu_seconds(pid: int | str = "self") -> float:
    """User and system CPU time a process has used so far (Linux /proc); 0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime, the 14th and 15th fields (the 12th and 13th after the command's closing paren).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size now (Linux /proc); 0 where unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _parent_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc): children, their children, and so on."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (parent := _parent_of(entry)) is not None:
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def stdio_pid() -> int:
    """The stdio server's pid: the child of this process running ``mj_mcp serve``; 0 if none."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _parent_of(entry) != os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"serve" in f.read():
                    return int(entry)
        except OSError:
            continue
    return 0


def pooled_http(base_url: str):
    """The direct baseline's client: pooled like the server's own (upstream.Upstream)."""
    import httpx

    return httpx.AsyncClient(
        base_url=base_url,
        headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
        timeout=httpx.Timeout(60.0, connect=10.0),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
    )


async def direct_imagine(http, body: dict[str, Any] = BODY) -> int:
    """The same upstream request the imagine tool makes, straight through httpx: POST, read the
    ndjson stream to its end, parse each line. Returns the number of lines."""
    import json

    n = 0
    async with http.stream("POST", "/midjourney/imagine", json=body, headers={"accept": "application/x-ndjson"}) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.strip():
                json.loads(line)
                n += 1
    return n


async def direct_floor(http: Any, n: int, reps: int) -> tuple[float, float, int]:
    """The floor a load sets without any server: one request alone (median of ``reps``), ``n`` at once
    (wall seconds), and how many of those failed (a reset connection counts, and the run goes on)."""
    import httpx

    failed = 0

    async def one() -> None:
        nonlocal failed
        try:
            await direct_imagine(http)
        except httpx.HTTPError:
            failed += 1

    await direct_imagine(http)  # warm: the connection
    singles = []
    for _ in range(reps):
        t0 = time.perf_counter()
        await direct_imagine(http)
        singles.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return median(singles), time.perf_counter() - t0, failed


def imagine_call(client: Any):
    """An ``imagine`` through an MCP client, with a progress callback (as a host passes one), each call
    with a fresh prompt: ``call(i)``."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    async def call(i: int) -> None:
        r = await client.call_tool("imagine", {"prompt": prompt(i)}, progress_callback=on_progress)
        assert not r.is_error, r.content

    return call
