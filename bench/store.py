"""6. The store: what SQLite costs per tool call against memory, a restart with 200 running jobs, and
the memory of 10,000 stored records.

- **Per call**: an imagine through an in-process server on the SQLite store (a temporary file) and the
  same through one on the memory store, interleaved call by call against a zero-delay simulator; the
  median of the paired differences, in both protocol eras.
- **Restart**: 200 tasks are started on a simulator in its own process; a SQLite store holds 200
  running records for them whose follower (a process that no longer exists) held their leases, as a
  killed server leaves them. Then ``mj-mcp serve`` starts on that store: the time to the answer to
  ``initialize``, and to all 200 records final in the store (taken over and followed by polling).
- **Memory**: 10,000 finished records in the memory store (tracemalloc), the SQLite file's size, and
  the RSS of a stdio server on that file against one on an empty file.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import anyio

from . import common
from .common import Row, median, ms, say

TARGET_EXTRA_S = 0.0003
RUNNING = 200
STORED = 10_000


async def per_call(quick: bool) -> list[Row]:
    from mcp import Client

    from mj_mcp.server import build_server

    n, warm = (40, 5) if quick else (300, 30)
    rows = []
    with common.thread_sim(time_scale=0.0) as sim, tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp:
        for mode in ("auto", "legacy"):
            db = Path(tmp) / f"{mode}.db"
            async with (
                Client(build_server(common.settings(sim.base_url)), mode=mode) as mem,
                Client(build_server(common.settings(sim.base_url, store=f"sqlite:///{db}")), mode=mode) as lite,
            ):
                calls = {"memory": common.imagine_call(mem), "sqlite": common.imagine_call(lite)}
                took: dict[str, list[float]] = {"memory": [], "sqlite": []}
                for i in range(warm + n):
                    order = ("memory", "sqlite") if i % 2 else ("sqlite", "memory")
                    for which in order:
                        t0 = time.perf_counter()
                        await calls[which](i)
                        if i >= warm:
                            took[which].append(time.perf_counter() - t0)
            diffs = [s - m for s, m in zip(took["sqlite"], took["memory"], strict=False)]
            extra = median(diffs)
            era = "2026-07-28" if mode == "auto" else "2025-11-25"
            say(
                f"  {era}: memory {ms(median(took['memory']))}  sqlite {ms(median(took['sqlite']))}  "
                f"extra {ms(extra)} (n={len(diffs)})"
            )
            rows.append(
                Row(
                    f"SQLite store extra per call, {era}",
                    f"{extra * 1000:.2f} ms",
                    "<= 0.3 ms",
                    extra <= TARGET_EXTRA_S,
                )
            )
    return rows


def _start_tasks(base_url: str, count: int) -> list[tuple[str, str]]:
    """(task_id, prompt) of ``count`` generations started straight on the simulator (async replies)."""
    import httpx

    out = []
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {common.TOKEN}"}, timeout=30) as http:
        for i in range(count):
            prompt = common.prompt(i, "a restart survivor")
            r = http.post("/midjourney/imagine", json={"action": "generate", "prompt": prompt, "async": True})
            r.raise_for_status()
            out.append((r.json()["task_id"], prompt))
    return out


def _left_running(db: Path, tasks: list[tuple[str, str]]) -> None:
    """What a server killed with these jobs in flight leaves in its store."""
    from mj_mcp.records import Record, Submission
    from mj_mcp.store import SqliteStore

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}:dead"

    async def write() -> None:
        store = await SqliteStore(db).open()
        for i, (task_id, prompt) in enumerate(tasks):
            record = Record(
                name=f"survivor-{i}",
                prompt=prompt,
                task_id=task_id,
                submission=Submission(action="generate", prompt=prompt),
            )
            await store.add(record)
            await store.lease(record.id, owner, 3600)
        await store.close()

    anyio.run(write)


def restart(quick: bool) -> list[Row]:
    count = 50 if quick else RUNNING
    with common.process_sim(time_scale=0.05) as url, tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp:
        db = Path(tmp) / "store.db"
        tasks = _start_tasks(url, count)
        _left_running(db, tasks)
        env = common.server_env(url, MJ_MCP_STORE=f"sqlite:///{db}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            common.SERVER_CMD,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=common.ROOT,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-06-18",
                            "capabilities": {},
                            "clientInfo": {"name": "bench", "version": "1"},
                        },
                    }
                ).encode()
                + b"\n"
            )
            proc.stdin.flush()
            proc.stdout.readline()
            t_init = time.perf_counter() - t0
            watch = sqlite3.connect(db)
            deadline = time.monotonic() + 120
            left = count
            while left and time.monotonic() < deadline:
                left = watch.execute("SELECT COUNT(*) FROM records WHERE status = 'running'").fetchone()[0]
                time.sleep(0.02)
            t_all = time.perf_counter() - t0
            watch.close()
        finally:
            proc.kill()
            proc.wait()
    say(
        f"  restart with {count} running jobs: initialize answered after {ms(t_init)}, "
        f"all final after {t_all:.2f} s ({left} still running)"
    )
    return [
        Row(f"restart: initialize answered ({count} jobs running)", ms(t_init), "report"),
        Row(
            f"restart: all {count} taken over and final",
            f"{t_all:.2f} s" + (f" ({left} left)" if left else ""),
            "report",
        ),
    ]


def _rss_of_server(env: dict[str, str]) -> int:
    proc = subprocess.Popen(
        common.SERVER_CMD,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=common.ROOT,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for message in (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "b", "version": "1"},
                },
            },
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "list_images", "arguments": {"limit": 200}},
            },
        ):
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
            proc.stdout.readline()
        return common.rss_bytes(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def memory(quick: bool) -> list[Row]:
    from mj_mcp.records import Record
    from mj_mcp.store import MemoryStore, SqliteStore

    count = 2000 if quick else STORED

    def record(i: int) -> Record:
        return Record(
            name=f"stored-{i}",
            status="completed",
            progress=100,
            kind="grid",
            task_id=f"task-{i:08d}",
            image_id=f"{1234567890123456789 + i}",
            prompt=f"a stored image number {i} --ar 16:9",
            image_url=f"https://cdn.example/attachments/1/{i}.png?ex=1&is=2&hm=3&width=1024&height=1024",
            raw_image_url=f"https://cdn.example/attachments/1/{i}.png?ex=1&is=2&hm=3&",
            width=1024,
            height=1024,
            raw_width=2048,
            raw_height=2048,
            actions=[
                "upscale1",
                "upscale2",
                "upscale3",
                "upscale4",
                "reroll",
                "variation1",
                "variation2",
                "variation3",
                "variation4",
            ],
        )

    async def fill_memory() -> int:
        store = MemoryStore()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            await store.add(record(i))
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return used

    used = anyio.run(fill_memory)
    with tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp:
        db = Path(tmp) / "store.db"

        async def fill_file() -> None:
            store = await SqliteStore(db).open()
            for i in range(count):
                await store.add(record(i).model_copy(update={"workspace": "default"}))
            await store.close()

        anyio.run(fill_file)
        size = db.stat().st_size + sum(p.stat().st_size for p in db.parent.glob("store.db-*"))
        empty = Path(tmp) / "empty.db"
        rss_full = _rss_of_server(common.server_env(None, MJ_MCP_STORE=f"sqlite:///{db}"))
        rss_empty = _rss_of_server(common.server_env(None, MJ_MCP_STORE=f"sqlite:///{empty}"))
    say(
        f"  {count} records: memory store {used / 2**20:.1f} MiB ({used / count:.0f} B each); "
        f"SQLite file {size / 2**20:.1f} MiB; server RSS {rss_full / 2**20:.0f} MiB on it, "
        f"{rss_empty / 2**20:.0f} MiB on an empty file"
    )
    return [
        Row(f"memory of {count:,} records (memory store)", f"{used / 2**20:.1f} MiB", "report"),
        Row(
            f"{count:,} records: SQLite file / server RSS vs empty",
            f"{size / 2**20:.1f} MiB / {rss_full / 2**20:.0f} vs {rss_empty / 2**20:.0f} MiB",
            "report",
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    say("[6] the store (SQLite against memory; restart; memory)")
    rows = anyio.run(per_call, quick)
    rows += restart(quick)
    rows += memory(quick)
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        say(row)
    os._exit(0)
