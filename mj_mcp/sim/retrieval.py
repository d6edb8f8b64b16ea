"""Task records as ``/midjourney/tasks`` shows them (docs/upstream.md, "/midjourney/tasks"): one by id or trace id, or a
filtered, paged batch.
"""

from __future__ import annotations

from typing import Any

from .records import SimTask
from .state import SimState


def record(state: SimState, task: SimTask, *, internal: bool = False) -> dict[str, Any]:
    """The ``/midjourney/tasks`` record (2.2); ``internal`` adds mid-flight progress and ``state``."""
    cfg = state.config
    rec: dict[str, Any] = {
        "_id": task.mongo_id,
        "id": task.id,
        "type": "imagine",
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
    with state.lock:
        task = state.task_map.get(task_id) if isinstance(task_id, str) and task_id else None
        if task is None and isinstance(trace_id, str) and trace_id:
            task = next((t for t in state.task_map.values() if t.trace_id == trace_id), None)
        return task if task is not None and task.token == token else None


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
    with state.lock:
        tasks = [t for t in state.task_map.values() if t.token == token]
        if ids or trace_ids:
            tasks = [t for t in tasks if t.id in (ids or []) or t.trace_id in (trace_ids or [])]
        if kind:
            tasks = [t for t in tasks if kind == "imagine"]
        if lo is not None:
            tasks = [t for t in tasks if t.created_at >= lo]
        if hi is not None:
            tasks = [t for t in tasks if t.created_at <= hi]
        if app:
            tasks = [t for t in tasks if t.application_id == app]
        tasks.sort(key=lambda t: t.created_at, reverse=True)
        offset = max(0, int(_number(body.get("offset")) or 0))
        limit = _number(body.get("limit"))
        limit = 12 if limit is None else max(0, int(limit))
        return {"items": [record(state, t) for t in tasks[offset:offset + limit]], "count": len(tasks)}
