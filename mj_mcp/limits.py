"""Limits per principal: jobs running at once and generations a day, checked before anything is sent.

A shared server bills an upstream account for everyone's jobs, so each authenticated principal has
two limits (from the team file, else ``MJ_MCP_LIMIT_RUNNING`` and ``MJ_MCP_LIMIT_DAILY``). The local
user (stdio, loopback HTTP) has none: it is the operator.

- **Generations a day**: a counter in the store per workspace and UTC day, taken atomically before
  the record is stored, so replicas sharing a store count together. A start refused later (a name
  taken, the running limit) gives it back; a generation sent counts, even if upstream refuses it.
- **Jobs running at once**: the workspace's running records, counted after the new one is stored,
  so two calls racing for the last slot never both pass (both may be refused; neither overshoots).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .core.operations import GET_TASK
from .errors import LimitReached
from .store import Store

DAY_S = 86400


@dataclass(frozen=True)
class Limits:
    running: int  # jobs running at once
    daily: int  # generations started per UTC day


def _in(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


async def take_daily(store: Store, workspace: str, limits: Limits, now: float | None = None) -> str:
    """Count one generation for today; the counter's key, to give it back with. ``LimitReached``
    (naming the limit and when it resets) when today's are used up."""
    now = time.time() if now is None else now
    day = int(now // DAY_S)
    key = f"daily:{workspace}:{day}"
    if await store.incr(key, 1, 2 * DAY_S) > limits.daily:
        await store.incr(key, -1, 2 * DAY_S)
        resets = (day + 1) * DAY_S
        stamp = time.strftime("%Y-%m-%d 00:00 UTC", time.gmtime(resets))
        raise LimitReached(
            f"daily limit reached: {limits.daily} generations a day (max_daily)",
            limit="max_daily",
            resets_at=resets,
            next_step=f"It resets at {stamp}, in {_in(resets - now)}.",
        )
    return key


async def give_back(store: Store, key: str) -> None:
    await store.incr(key, -1, 2 * DAY_S)


async def check_running(store: Store, workspace: str, limits: Limits) -> None:
    """After the new record is stored: ``LimitReached`` when it makes one too many running."""
    if await store.count(workspace, running=True) > limits.running:
        raise LimitReached(
            f"limit reached: {limits.running} jobs running at once (max_running)",
            limit="max_running",
            resets_at=None,
            next_step=f"A slot frees when one finishes: wait on a running image with {GET_TASK} "
            "(wait_seconds), then call again.",
        )
