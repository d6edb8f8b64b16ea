"""Task records as ``/midjourney/tasks`` shows them (docs/upstream.md, "/midjourney/tasks"): one by id or trace id, or a
filtered, paged batch; from memory, else from the archive an embedded simulator keeps (archive.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import timeline
from .records import SimTask
from .state import SimState


def record(state: SimState, task: SimTask, *, internal: bool = False) -> dict[str, Any]:
    """The ``/midjourney/tasks`` record (2.2); ``internal`` adds mid-flight progress and ``state``."""
    cfg = state.config
    rec: dict[str, Any] = {
        "_id": task.mongo_id,
        "id": task.id,
        "type": task.type,
        "trace_id": task.trace_id,
        "request": task.request,
        "mode": task.mode,
        "created_at": task.created_at,
    }
    if task.application_id:
        rec["application_id"] = task.application_id
    if task.started_at is not None:
        rec["started_at"] = task.started_at
    if task.image_id:
        rec["image_id"] = task.image_id
    if task.status == "succeeded":
        rec["response"] = task.final
    elif task.status == "failed":
        rec["response"] = {"success": False, "error": task.error, "trace_id": task.trace_id}
    elif (cfg.expose_progress_in_task or internal) and task.events:
        rec["response"] = task.events[-1]
    if task.done and task.finished_at is not None:
        rec["finished_at"] = task.finished_at
        took = round(task.finished_at - task.created_at, 3)
        if cfg.task_time_field in ("elapsed", "both"):
            rec["elapsed"] = took
        if cfg.task_time_field in ("duration", "both"):
            rec["duration"] = took
    if cfg.task_state_field or internal:
        rec["state"] = task.status
    return rec


def find(state: SimState, token: str, task_id: Any = None, trace_id: Any = None) -> SimTask | None:
    """The token's task by id (else trace id): in memory, else in the archive, whose tasks belong to
    whoever runs the simulator. A task an earlier process left unfinished goes on (timeline.resume)."""
    task_id = task_id if isinstance(task_id, str) and task_id else None
    trace_id = trace_id if isinstance(trace_id, str) and trace_id else None
    with state.lock:
        task = state.task_map.get(task_id) if task_id else None
        if task is None and trace_id:
            task = next((t for t in state.task_map.values() if t.trace_id == trace_id), None)
        if task is not None:
            return task if task.token == token else None
    if state.archive is None:
        return None
    archived = state.archive.task(task_id) if task_id else None
    if archived is None and trace_id:
        archived = state.archive.task(trace_id=trace_id)
    return _restored(state, token, archived)


def _restored(state: SimState, token: str, task: SimTask | None) -> SimTask | None:
    """An archived task, handed to ``token``; an unfinished one joins the tasks in memory and goes on."""
    if task is None or task.done:
        if task is not None:
            task.token = token
        return task
    with state.lock:
        current = state.task_map.get(task.id)
        if current is not None:
            return current if current.token == token else None
        task.token, task.changed = token, asyncio.Event()
        state.task_map[task.id] = task
        timeline.resume(state, task)
        return task


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def batch(state: SimState, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """``retrieve_batch``: by ids and/or trace_ids, else all the token's tasks; newest first."""
    ids = body.get("ids") if isinstance(body.get("ids"), list) else None
    trace_ids = body.get("trace_ids") if isinstance(body.get("trace_ids"), list) else None
    lo, hi = _number(body.get("created_at_min")), _number(body.get("created_at_max"))
    kind, app = body.get("type"), body.get("application_id")
    app = app if isinstance(app, str) and app else None
    with state.lock:
        found: dict[str, tuple[str, float, str]] = {
            t.id: (t.trace_id, t.created_at, t.type)
            for t in state.task_map.values()
            if t.token == token and (app is None or t.application_id == app)
        }
    if state.archive is not None:
        for task_id, trace_id, created_at, task_type in state.archive.summaries(since=lo, until=hi, application_id=app):
            found.setdefault(task_id, (trace_id, created_at, task_type))
    rows = [(task_id, *summary) for task_id, summary in found.items()]
    if ids or trace_ids:
        rows = [r for r in rows if r[0] in (ids or []) or r[1] in (trace_ids or [])]
    if kind:
        rows = [r for r in rows if r[3] == kind]
    if lo is not None:
        rows = [r for r in rows if r[2] >= lo]
    if hi is not None:
        rows = [r for r in rows if r[2] <= hi]
    rows.sort(key=lambda r: r[2], reverse=True)
    offset = max(0, int(_number(body.get("offset")) or 0))
    limit = _number(body.get("limit"))
    limit = 12 if limit is None else max(0, int(limit))
    page = [find(state, token, row[0]) for row in rows[offset : offset + limit]]
    return {"items": [record(state, t) for t in page if t is not None], "count": len(rows)}
