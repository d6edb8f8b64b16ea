"""An ``/imagine`` request becomes a task: validated, planned, registered, and its job started.

State mutations hold ``state.lock`` briefly and never across an ``await``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core import actions, prompt
from . import faults as faults_mod
from .bodies import SimError
from .checks import check_mask, unrecognized
from .knobs import MODES
from .planning import plan_timing, result_plan
from .records import SimImage, SimTask
from .state import SimState
from .timeline import run_job


@dataclass
class Submission:
    """One accepted ``/imagine`` request, as the app hands it over."""

    body: dict[str, Any]
    token: str
    reply: str  # "sync" | "stream" | "async"
    wants_ndjson: bool
    trace_id: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    faults: list[faults_mod.Fault] = field(default_factory=list)


def submit(state: SimState, sub: Submission) -> SimTask:
    """Validate an ``/imagine`` body, create its task and start its job; SimError for a 4xx reply."""
    cfg = state.config
    body = sub.body
    name = body.get("action") or "generate"
    if not isinstance(name, str) or name not in actions.BY_NAME:
        raise SimError("bad_request", f"Unsupported action `{name}`")
    mode = body.get("mode") or "fast"
    if mode not in MODES:
        raise SimError("bad_request", f"Invalid mode `{mode}`: use one of fast, relax, turbo")
    act = actions.get(name)
    raw_prompt = body.get("prompt")
    if raw_prompt is not None and not isinstance(raw_prompt, str):
        raise SimError("bad_request", "prompt must be a string")
    text = raw_prompt or ""
    if not cfg.embedded:
        text, _ = faults_mod.strip_prompt(text)
    if name == "generate" and not text.strip():
        raise SimError("bad_request", "prompt is required")

    failure: tuple[str, str] | None = None
    source: SimImage | None = None
    if act.needs_image:
        image_id = body.get("image_id")
        if image_id in (None, ""):
            raise SimError("bad_request", f"image_id is required for action `{name}`")
        source = state.image(str(image_id))
        if source is None:
            msg = f"Image `{image_id}` was not found"
            if cfg.unknown_image_id_mode == "http_400":
                raise SimError("bad_request", msg)
            failure = ("bad_request", msg)
        elif cfg.strict_actions and not actions.allowed_on(act, source.actions, source.kind):
            raise SimError("bad_request", f"Action `{name}` is not available on image `{image_id}`; "
                                          f"available: {', '.join(source.actions)}")
    mask = check_mask(cfg, body.get("mask"), source) if act.needs_mask else None
    callback = body.get("callback_url")
    if callback and cfg.embedded:  # it would POST wherever a request says, from the user's machine
        raise SimError("bad_request", "callback_url is not available in the embedded simulator")

    parsed = prompt.parse(text if act.prompt != "ignored" else "")
    if len(parsed.urls) > cfg.max_image_urls:
        raise SimError("bad_request", f"Too many image URLs (max {cfg.max_image_urls})")
    bad = unrecognized(text, parsed)
    if bad and failure is None:
        msg = "Unrecognized argument(s): " + ", ".join(f"`{t}`" for t in bad)
        how = cfg.bad_flag_mode
        if how == "auto":
            how = "http_400" if sub.reply == "sync" else "task_fail"
        if how == "http_400":
            raise SimError("bad_request", msg)
        failure = ("bad_request", msg)
    if cfg.moderation_word and act.prompt != "ignored" and cfg.moderation_word.lower() in text.lower():
        raise SimError("forbidden")

    with state.lock:
        task_id = state.ids.uuid()
        if faults_mod.first(sub.faults, "duplicate_task_id") and state.task_map:
            task_id = max(state.task_map.values(), key=lambda t: t.created_at).id
        key = state.next_key(task_id)
        plan = plan_timing(cfg, act, mode, sub.headers, sub.faults)
        if failure is not None:
            plan.fail_at, (plan.fail_code, plan.fail_message) = 0, failure
        recipe, result = (None, {}) if failure else result_plan(state, act, source, parsed, mask, key)
        task = SimTask(
            id=task_id,
            trace_id=sub.trace_id,
            token=sub.token,
            request={**body, "trace_id": sub.trace_id, "stream": sub.wants_ndjson},
            created_at=time.time(),
            mode=mode,
            action=name,
            base_url=sub.base_url,
            plan=plan,
            kind=act.makes,
            recipe=recipe,
            result=result,
            application_id=body.get("application_id") if isinstance(body.get("application_id"), str) else None,
            callback_url=callback if isinstance(callback, str) and callback else None,
            stream=sub.wants_ndjson,
            mongo_id=state.ids.object_id(),
            secret=state.url_secret(),
            changed=asyncio.Event(),
        )
        state.task_map[task.id] = task
        state.keep(task)
        task.job = asyncio.get_running_loop().create_task(run_job(state, task))
    return task
