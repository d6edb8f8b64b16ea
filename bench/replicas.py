"""7. Replicas: two ``mj-mcp serve --transport http`` processes on one Redis, the simulator in its own
process, a real ``redis-server`` in a temporary directory.

- **1,000 at once across two replicas**: 1,000 imagine calls at the same moment, alternately to each
  replica (2026-07-28 clients, one per replica), each ~2 s upstream (``concurrency.KNOBS``), against
  one generation alone through the same replica; beside it the floor: the same 1,000 upstream requests
  straight through httpx to the simulator. Memory per in-flight job: each replica's RSS growth
  (sampled every 20 ms) during the batch, over its 500 jobs (the first batch: the heap grows for it).
- **Redis against memory, per call**: an imagine through an in-process server on Redis and the same on
  the memory store, interleaved call by call against a zero-delay simulator; the median of the paired
  differences, in both protocol eras.
- **Takeover**: 200 jobs running on one replica (the simulator holds them queued); the replica is
  killed (``kill -9``: its host sees the process gone, so its leases are void at once) or frozen
  (``SIGSTOP``: as a replica on another host that stopped answering, whose leases must expire); the
  time until the survivor holds every job's lease. Leases are the default 15 s unless ``--quick``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import anyio

from . import common
from .common import Row, median, ms, say
from .concurrency import KNOBS

TARGET_RATIO = 1.3
TARGET_EXTRA_S = 0.001
BATCH = 1000
TAKEOVER_JOBS = 200
HELD = dict(time_scale=1.0, start_delay_s={"fast": 600.0, "turbo": 600.0, "relax": 600.0})  # queued 10 min


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def redis_server(tmp: str) -> Iterator[str]:
    """A real redis-server on a free loopback port, nothing saved to disk; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: run scripts/test-deps")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            tmp,
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class _Replica:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [*common.SERVER_CMD, "--transport", "http", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=common.ROOT,
        )

    def ready(self) -> _Replica:
        _wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@contextlib.contextmanager
def replicas(count: int, sim_url: str, store_url: str, tmp: str, **extra: str) -> Iterator[list[_Replica]]:
    env = common.server_env(
        sim_url,
        MJ_MCP_STORE=store_url,
        MJ_MCP_MAX_IMAGES="100000",
        MJ_MCP_CACHE_DIR=os.path.join(tmp, "cache"),
        **extra,
    )
    started = [_Replica(env) for _ in range(count)]
    try:
        yield [r.ready() for r in started]
    finally:
        for r in started:
            r.stop()


async def _call(client: Any, i: int, failures: list[str]) -> None:
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        pass

    try:
        r = await client.call_tool(
            "imagine", {"prompt": common.prompt(i, "a crowded harbour")}, progress_callback=on_progress
        )
    except Exception as exc:
        failures.append(repr(exc)[:200])
        return
    if r.is_error:
        failures.append(r.content[0].text if r.content else "error")


async def _batch(clients: list[Any], n: int, start: int, pids: list[int]) -> tuple[float, list[int], list[str]]:
    """Wall time of n calls at once spread over ``clients``, each replica's peak RSS growth, failures."""
    failures: list[str] = []
    base = [common.rss_bytes(p) for p in pids]
    peak = list(base)
    done = anyio.Event()

    async def sample() -> None:
        while not done.is_set():
            for k, p in enumerate(pids):
                peak[k] = max(peak[k], common.rss_bytes(p))
            with anyio.move_on_after(0.02):
                await done.wait()

    async with anyio.create_task_group() as outer:
        outer.start_soon(sample)
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(_call, clients[i % len(clients)], start + i, failures)
        wall = time.perf_counter() - t0
        done.set()
    return wall, [p - b for p, b in zip(peak, base, strict=False)], failures


async def _direct_floor(sim_url: str, n: int, reps: int) -> tuple[float, float, int]:
    """``common.direct_floor`` through a client without a connection cap: a thousand at once."""
    import httpx

    async with httpx.AsyncClient(
        base_url=sim_url,
        headers={"content-type": "application/json", "authorization": f"Bearer {common.TOKEN}"},
        timeout=httpx.Timeout(120.0, connect=30.0),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
    ) as http:
        return await common.direct_floor(http, n, reps)


async def at_once(quick: bool) -> list[Row]:
    from mcp import Client

    n = 200 if quick else BATCH
    reps = 2 if quick else 3
    say(f"[7] replicas ({n} generations at once over two replicas on Redis, each ~2 s upstream)")
    with (
        common.process_sim(**KNOBS) as sim_url,
        tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp,
        redis_server(tmp) as store_url,
    ):
        single_direct, wall_direct, lost = await _direct_floor(sim_url, n, reps)
        floor = wall_direct / single_direct
        say(
            f"  direct httpx: single {single_direct:.3f} s, {n} at once {wall_direct:.3f} s, ratio {floor:.3f}x"
            + (f" ({lost} failed)" if lost else "")
        )
        with replicas(2, sim_url, store_url, tmp) as pair:
            async with Client(pair[0].url) as one, Client(pair[1].url) as two:
                pids = [r.proc.pid for r in pair]
                for c in (one, two):
                    await _call(c, -1, [])  # warm: imports, connections
                singles = []
                for i in range(reps):
                    t0 = time.perf_counter()
                    await _call(one, 10_000 + i, [])
                    singles.append(time.perf_counter() - t0)
                single = median(singles)
                wall, grew, failures = await _batch([one, two], n, 0, pids)
    ratio = wall / single
    per = [g / (n / 2) for g in grew]
    say(
        f"  two replicas: single {single:.3f} s, {n} at once {wall:.3f} s, ratio {ratio:.3f}x; RSS growth per "
        f"in-flight job {per[0] / 1024:.0f} / {per[1] / 1024:.0f} KiB; failures {len(failures)}"
    )
    if failures:
        say(f"    first failure: {failures[0][:200]}")
    return [
        Row(
            f"{n} at once / one, direct httpx (floor)",
            f"{floor:.3f}x" + (f" ({lost} failed)" if lost else ""),
            "report",
        ),
        Row(
            f"{n} at once / one, two replicas on Redis",
            f"{ratio:.3f}x ({wall:.2f} s vs {single:.2f} s)",
            "<= 1.3x",
            ratio <= TARGET_RATIO and not failures,
        ),
        Row("memory per in-flight job, per replica", f"{per[0] / 1024:.0f} / {per[1] / 1024:.0f} KiB (RSS)", "report"),
    ]


async def per_call(quick: bool) -> list[Row]:
    from mcp import Client

    from mj_mcp.server import build_server

    n, warm = (40, 5) if quick else (300, 30)
    rows = []
    with (
        common.thread_sim(time_scale=0.0) as sim,
        tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp,
        redis_server(tmp) as store_url,
    ):
        for mode in ("auto", "legacy"):
            async with (
                Client(build_server(common.settings(sim.base_url)), mode=mode) as mem,
                Client(build_server(common.settings(sim.base_url, store=store_url)), mode=mode) as red,
            ):
                calls = {"memory": mem, "redis": red}
                took: dict[str, list[float]] = {"memory": [], "redis": []}
                for i in range(warm + n):
                    for which in ("memory", "redis") if i % 2 else ("redis", "memory"):
                        t0 = time.perf_counter()
                        await _call(calls[which], 50_000 * (mode == "legacy") + i, [])
                        if i >= warm:
                            took[which].append(time.perf_counter() - t0)
            extra = median([r - m for r, m in zip(took["redis"], took["memory"], strict=False)])
            era = "2026-07-28" if mode == "auto" else "2025-11-25"
            say(
                f"  {era}: memory {ms(median(took['memory']))}  redis {ms(median(took['redis']))}  "
                f"extra {ms(extra)} (n={n})"
            )
            rows.append(
                Row(f"Redis store extra per call, {era}", f"{extra * 1000:.2f} ms", "<= 1 ms", extra <= TARGET_EXTRA_S)
            )
    return rows


def _leases_held_by(store_url: str, pid: int, ids: list[str]) -> int:
    import redis

    client = redis.Redis.from_url(store_url)
    try:
        owners = client.mget([f"mj-mcp:lease:{i}" for i in ids])
    finally:
        client.close()
    mark = f":{pid}:".encode()
    return sum(1 for o in owners if o and mark in o)


def _running_ids(store_url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(store_url)
    try:
        return [i.decode() for i in client.zrange("mj-mcp:running", 0, -1)]
    finally:
        client.close()


async def _start_jobs(url: str, count: int) -> None:
    from mcp import Client

    async with Client(url) as c, anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(
                lambda i=i: c.call_tool("imagine", {"prompt": common.prompt(i, "a held job"), "wait_seconds": 0})
            )


def takeover(quick: bool) -> list[Row]:
    count = 50 if quick else TAKEOVER_JOBS
    lease = "3" if quick else "15"
    rows = []
    for how in ("kill -9", "frozen"):
        with (
            common.process_sim(**HELD) as sim_url,
            tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp,
            redis_server(tmp) as store_url,
            replicas(2, sim_url, store_url, tmp, MJ_MCP_LEASE_SECONDS=lease) as (victim, survivor),
        ):
            anyio.run(_start_jobs, victim.url, count)
            ids = _running_ids(store_url)
            deadline = time.monotonic() + 60
            while _leases_held_by(store_url, victim.proc.pid, ids) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            t0 = time.perf_counter()
            if how == "kill -9":
                victim.proc.kill()
                victim.proc.wait()
            else:
                os.kill(victim.proc.pid, signal.SIGSTOP)
            deadline = time.monotonic() + 10 * float(lease) + 60
            held = 0
            while held < len(ids) and time.monotonic() < deadline:
                held = _leases_held_by(store_url, survivor.proc.pid, ids)
                time.sleep(0.02)
            took = time.perf_counter() - t0
            if how == "frozen":
                victim.proc.kill()
        say(
            f"  takeover after {how}: {held}/{len(ids)} jobs followed by the survivor after {took:.2f} s "
            f"(lease {lease} s)"
        )
        rows.append(
            Row(
                f"takeover of {len(ids)} jobs, {how} (lease {lease} s)",
                f"{took:.2f} s" + ("" if held == len(ids) else f" ({len(ids) - held} left)"),
                "report",
            )
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    rows = anyio.run(at_once, quick)
    rows += anyio.run(per_call, quick)
    rows += takeover(quick)
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        say(row)
    os._exit(0)
