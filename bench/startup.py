"""5. Start-up: from spawning ``python -m mj_mcp serve`` to the answer to ``initialize`` on stdout.

Timed by hand (no SDK client in the loop): spawn, write one JSON-RPC line, read one line. Two
arrangements: a token and an external upstream (what a host runs), and no token (the lifespan
starts the embedded simulator; the SDK enters the lifespan before it reads the first message, so
``initialize`` waits for it). The bare interpreter (``python -c pass``) is the floor. Also the top
import costs of ``mj_mcp.server`` from ``python -X importtime``.

The split (issue 21): the SDK's bare import (``python -c "import mcp.server.mcpserver"``), mj-mcp's own
imports (a process importing what ``serve`` imports before it reads settings, less the SDK's), and the
first answer (settings, the server, the store check, the lifespan, the answer itself), each the
difference of interleaved medians. The row with a target is spawn-to-``initialize`` (token + external
upstream) minus the SDK's bare import, the median of that difference within each round: what mj-mcp adds
to the SDK it is built on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from . import common
from .common import Row, median, say

TARGET_S = 1.0
# What mj-mcp may add to the SDK's own import, spawn to the initialize answer.
TARGET_OWN_S = 0.050
SDK_IMPORT = [sys.executable, "-c", "import mcp.server.mcpserver"]
# What ``mj-mcp serve`` imports before it reads its settings (cli.main), stdio transport.
SERVE_IMPORTS = [
    sys.executable,
    "-c",
    "import mj_mcp.cli, mj_mcp.server, mj_mcp.server.http, mj_mcp.store, mj_mcp.stdio",
]
INIT = (
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
    )
    + "\n"
)


def time_initialize(env: dict[str, str], cmd: list[str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd or common.SERVER_CMD,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=common.ROOT,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(INIT.encode())
        proc.stdin.flush()
        line = proc.stdout.readline()
        took = time.perf_counter() - t0
        answer = json.loads(line)
        if answer.get("id") != 1 or "result" not in answer:
            raise RuntimeError(f"unexpected answer: {line[:200]!r}")
        return took
    finally:
        proc.kill()
        proc.wait()


def time_bare(env: dict[str, str], cmd: list[str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd or [sys.executable, "-c", "pass"], env=env, check=True, cwd=common.ROOT)
    return time.perf_counter() - t0


def import_profile(module: str = "mj_mcp.server", top: int = 12) -> tuple[float, list[tuple[float, str]]]:
    """(total seconds, the ``top`` heaviest imports by cumulative time) from ``-X importtime``."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=env,
        capture_output=True,
        text=True,
        cwd=common.ROOT,
    ).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cum_us, name = line[len("import time:") :].split("|", 2)
        rows.append((int(cum_us) / 1e6, name.rstrip()))
    total = next((c for c, n in rows if n.strip() == module), 0.0)
    # the heaviest top-level-ish packages: names without a dot, or direct children of the ones we care about
    heavy = sorted(rows, key=lambda r: -r[0])
    seen, picked = set(), []
    for cum, name in heavy:
        bare = name.strip()
        if bare in seen:
            continue
        seen.add(bare)
        picked.append((cum, name))
        if len(picked) >= top:
            break
    return total, picked


def run(quick: bool = False) -> list[Row]:
    reps = 3 if quick else 15
    rows: list[Row] = []
    say(f"[5] start-up (spawn -> initialize answer over stdio; median of {reps})")
    with common.thread_sim(time_scale=0.0) as sim:
        plain = common.server_env(None)
        arrangements = {
            "bare interpreter (floor)": lambda: time_bare(plain),
            "SDK import alone": lambda: time_bare(plain, SDK_IMPORT),
            "serve's imports": lambda: time_bare(plain, SERVE_IMPORTS),
            "token + external upstream": lambda: time_initialize(common.server_env(sim.base_url)),
            "no token (embedded simulator)": lambda: time_initialize(common.server_env(None)),
        }
        figures: dict[str, float] = {}
        for _ in range(1):  # warm the bytecode caches once
            time_initialize(common.server_env(sim.base_url))
        samples: dict[str, list[float]] = {k: [] for k in arrangements}
        for _ in range(reps):  # interleaved
            for label, timed in arrangements.items():
                samples[label].append(timed())
        for label, xs in samples.items():
            figures[label] = median(xs)
            say(f"  {label:<32} {median(xs) * 1000:7.0f} ms  (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})")
    sdk, imports = figures["SDK import alone"], figures["serve's imports"]
    init = figures["token + external upstream"]
    # The row's figure: the median of the differences within each round (as the per-call benches pair
    # their samples), not the difference of two medians, which a drift of the machine between rounds moves.
    own = median(
        [t - s for t, s in zip(samples["token + external upstream"], samples["SDK import alone"], strict=True)]
    )
    say(
        f"  split of spawn -> initialize (token): SDK import {sdk * 1000:.0f} ms, mj-mcp's own imports "
        f"{(imports - sdk) * 1000:.0f} ms, first answer {(init - imports) * 1000:.0f} ms; "
        f"the SDK's import is {sdk / init:.0%} of it"
    )
    rows.append(
        Row(
            "start-up: spawn to initialize over stdio, minus the SDK's bare import",
            f"{own * 1000:.0f} ms (medians {init * 1000:.0f} against {sdk * 1000:.0f} ms; own imports "
            f"{(imports - sdk) * 1000:.0f}, first answer {(init - imports) * 1000:.0f})",
            f"<= {TARGET_OWN_S * 1000:.0f} ms",
            own <= TARGET_OWN_S,
        )
    )
    for label in ("token + external upstream", "no token (embedded simulator)"):
        rows.append(
            Row(
                f"start-up to initialize, {label.split(' (')[0]}",
                f"{figures[label] * 1000:.0f} ms",
                "< 1000 ms",
                figures[label] < TARGET_S,
            )
        )
    rows.append(Row("start-up, bare interpreter", f"{figures['bare interpreter (floor)'] * 1000:.0f} ms", "report"))
    total, top = import_profile()
    say(f"  import mj_mcp.server: {total * 1000:.0f} ms cumulative (-X importtime, one run); heaviest:")
    for cum, name in top:
        say(f"    {cum * 1000:7.1f} ms  {name}")
    rows.append(Row("import mj_mcp.server", f"{total * 1000:.0f} ms", "report"))
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        say(row)
