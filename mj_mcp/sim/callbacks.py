"""Callback delivery (docs/upstream.md, "Callbacks"): one POST when the task ends, or one per progress event and
then the final one when the request also asked for ndjson. Every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from . import timeline
from .records import SimTask
from .state import SimState


def start(state: SimState, task: SimTask) -> None:
    """Deliver ``task``'s callbacks in the background, in order, on the simulator's loop."""
    job = asyncio.get_running_loop().create_task(_deliver(state, task))
    with state.lock:
        state.background.add(job)
    job.add_done_callback(lambda j: state.background.discard(j))


async def _deliver(state: SimState, task: SimTask) -> None:
    cfg = state.config
    url = task.callback_url
    assert url
    every_event = task.stream
    held: dict[str, Any] | None = None  # callback_out_of_order: the first progress post, sent late
    swapped = False
    index = 0
    await asyncio.sleep(cfg.callback_delay_s * task.plan.time_scale)
    async with httpx.AsyncClient(timeout=cfg.callback_timeout_s) as client:
        while not task.aborted:
            await timeline.wait(task, index)
            events, index = task.events[index:], len(task.events)
            for event in events:
                final = event is task.final
                if not final and not every_event:
                    continue
                body = callback_body(state, task, event)
                if not final and cfg.callback_out_of_order and not swapped:
                    held, swapped = body, True
                    continue
                await _post(state, client, task, url, body)
                if held is not None:
                    await _post(state, client, task, url, held)
                    held = None
                if final and cfg.callback_duplicate:
                    await _post(state, client, task, url, body)
            if task.done and index >= len(task.events):
                return


async def _post(state: SimState, client: httpx.AsyncClient, task: SimTask, url: str, body: dict[str, Any]) -> None:
    cfg = state.config
    backoff = cfg.callback_retry_backoff_s or [1.0]
    for attempt in range(cfg.callback_retries + 1):
        entry: dict[str, Any] = {
            "task_id": task.id,
            "url": url,
            "body": body,
            "attempt": attempt + 1,
            "time": time.time(),
            "status": None,
            "error": None,
        }
        try:
            resp = await client.post(url, json=body)
            entry["status"] = resp.status_code
            ok = 200 <= resp.status_code < 300
        except httpx.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            ok = False
        state.log_callback(entry)
        if ok:
            return
        if attempt < cfg.callback_retries:
            await asyncio.sleep(backoff[min(attempt, len(backoff) - 1)] * task.plan.time_scale)


def callback_body(state: SimState, task: SimTask, event: dict[str, Any]) -> dict[str, Any]:
    """A callback POST body: the event itself, the failure as the guide shows it (4.3)."""
    if event.get("success") is False:
        out = {"success": False, "task_id": task.id, "error": event["error"]}
        if state.config.callback_include_trace:
            out["trace_id"] = task.trace_id
        return out
    return event
