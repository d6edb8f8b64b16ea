"""9. The simulator's own speed, where a user of the default (no token) mode waits on it, and where the
test suite used to assert it (tests assert no durations: these figures moved here).

- **first fetch of a grid**: a finished 2048 px grid's PNG is drawn when it is first asked for (each
  result with a thumbnail downloads it); the clock runs from the GET to the last byte, over fresh grids.
- **stop with work in flight**: ``SimServer.stop()`` while a sync request that would take 110 s waits
  on its task (a host that restarts the server waits on this).
"""

from __future__ import annotations

import threading
import time

from . import common
from .common import Row, median, say

TARGET_FIRST_FETCH_S = 1.0
TARGET_STOP_S = 1.0


def first_fetches(n: int) -> list[float]:
    import httpx

    took = []
    with common.thread_sim(time_scale=0.0) as sim, httpx.Client(timeout=60) as http:
        auth = {"authorization": f"Bearer {common.TOKEN}"}
        for i in range(n):
            grid = http.post(f"{sim.base_url}/midjourney/imagine", json={"prompt": common.prompt(i)}, headers=auth)
            grid.raise_for_status()
            t0 = time.perf_counter()
            png = http.get(grid.json()["raw_image_url"])
            took.append(time.perf_counter() - t0)
            png.raise_for_status()
    return took


def stop_with_work_in_flight() -> float:
    import httpx

    from mj_mcp.sim import SimServer

    server = SimServer(common.sim_config(time_scale=10.0)).start()
    auth = {"authorization": f"Bearer {common.TOKEN}"}

    def sync_request() -> None:
        try:
            httpx.post(f"{server.base_url}/midjourney/imagine", json={"prompt": "x"}, headers=auth, timeout=300)
        except httpx.HTTPError:
            pass  # cut off by the stop: what is measured

    hung = threading.Thread(target=sync_request, daemon=True)
    hung.start()
    deadline = time.monotonic() + 30
    while not server.state.requests("/midjourney/imagine") and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.perf_counter()
    server.stop()
    took = time.perf_counter() - t0
    hung.join(timeout=30)
    return took


def run(quick: bool = False) -> list[Row]:
    say("[9] the simulator (first fetch of a grid, stop with work in flight)")
    fetches = first_fetches(3 if quick else 10)
    say(
        f"  first fetch of a 2048 px grid: p50 {median(fetches) * 1000:.0f} ms, max {max(fetches) * 1000:.0f} ms "
        f"(n={len(fetches)})"
    )
    stops = [stop_with_work_in_flight() for _ in range(1 if quick else 3)]
    say(
        f"  stop with a sync request in flight: p50 {median(stops) * 1000:.0f} ms, max {max(stops) * 1000:.0f} ms "
        f"(n={len(stops)})"
    )
    return [
        Row(
            "simulator: first fetch of a 2048 px grid (p50)",
            f"{median(fetches) * 1000:.0f} ms",
            f"< {TARGET_FIRST_FETCH_S * 1000:.0f} ms",
            median(fetches) < TARGET_FIRST_FETCH_S,
        ),
        Row(
            "simulator: stop with work in flight (p50)",
            f"{median(stops) * 1000:.0f} ms",
            f"< {TARGET_STOP_S * 1000:.0f} ms",
            median(stops) < TARGET_STOP_S,
        ),
    ]
