"""A request to a task endpoint (``/imagine``, ``/edits``, ``/videos``, ``/describe``) becomes a task:
validated, planned, registered, and its job started (docs/upstream.md, "The simulator").

State mutations hold ``state.lock`` briefly and never across an ``await``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core import actions, prompt
from . import faults as faults_mod
from .bodies import SimError
from .checks import check_mask, unrecognized
from .clips import MAX_SEGMENTS, SHORT_SIDE
from .knobs import MODES, VIDEO_MODES
from .planning import describe_texts, edit_plan, known_aspect, plan_timing, result_plan, upscale_speed, video_footage
from .records import Footage, Plan, Recipe, SimImage, SimTask, TaskType
from .state import SimState
from .timeline import run_job

MAX_URL = 2048
# Characters of a prompt to an edit or a video.
MAX_PROMPT = 20_000
_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


@dataclass
class Submission:
    """One accepted request to a task endpoint, as the app hands it over."""

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
    # The catalogue holds /videos' actions too (animate, extendN): not /imagine's.
    if not isinstance(name, str) or name not in actions.BY_NAME or actions.get(name).endpoint != "imagine":
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
            raise SimError(
                "bad_request",
                f"Action `{name}` is not available on image `{image_id}`; available: {', '.join(source.actions)}",
            )
    mask = check_mask(cfg, body.get("mask"), source) if act.needs_mask else None
    _no_callback_when_embedded(state, body)

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
        task_id, key = _new_id(state, sub)
        plan = plan_timing(cfg, "imagine", mode, sub.headers, sub.faults, upscale_speed(cfg, act))
        if failure is not None:
            plan.fail_at, (plan.fail_code, plan.fail_message) = 0, failure
        recipe, result = (None, {}) if failure else result_plan(state, act, source, parsed, mask, key)
        return _register(state, sub, task_id, "imagine", mode, name, plan, kind=act.makes, recipe=recipe, result=result)


def _new_id(state: SimState, sub: Submission) -> tuple[str, str]:
    """A new task's id and the key of what it draws (unique across processes sharing an archive).
    Called holding ``state.lock``."""
    task_id = state.ids.uuid()
    if faults_mod.first(sub.faults, "duplicate_task_id") and state.task_map:
        task_id = max(state.task_map.values(), key=lambda t: t.created_at).id
    return task_id, state.next_key(task_id)


def _register(
    state: SimState,
    sub: Submission,
    task_id: str,
    task_type: TaskType,
    mode: str,
    action: str,
    plan: Plan,
    *,
    kind: actions.Kind | None = None,
    recipe: Recipe | None = None,
    result: dict[str, Any] | None = None,
    footage: Footage | None = None,
) -> SimTask:
    """Create the task, keep it (archive), start its job. Called holding ``state.lock``."""
    body = sub.body
    callback = body.get("callback_url")
    task = SimTask(
        id=task_id,
        trace_id=sub.trace_id,
        token=sub.token,
        request={**body, "trace_id": sub.trace_id, "stream": sub.wants_ndjson},
        created_at=time.time(),
        mode=mode,
        action=action,
        base_url=sub.base_url,
        plan=plan,
        type=task_type,
        kind=kind,
        recipe=recipe,
        result=result or {},
        footage=footage,
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


# --- what every endpoint checks alike


def _mode(body: dict[str, Any], allowed: tuple[str, ...], what: str) -> str:
    mode = body.get("mode") or "fast"
    if mode not in allowed:
        raise SimError("bad_request", f"Invalid mode `{mode}` for {what}: use one of {', '.join(allowed)}")
    return str(mode)


def _url(body: dict[str, Any], name: str, *, required: bool) -> str:
    """An image URL field: "" when absent and not required; 400 when missing or not an http(s) URL."""
    value = body.get(name)
    if value in (None, "") and not required:
        return ""
    if value in (None, ""):
        raise SimError("bad_request", f"{name} is required")
    if not isinstance(value, str) or len(value) > MAX_URL or not _HTTP_URL.match(value.strip()):
        raise SimError("bad_request", f"{name} must be the http(s) URL of an image")
    return value.strip()


def _text(state: SimState, body: dict[str, Any], *, required: bool) -> str:
    """The prompt, without the fault tokens a standalone simulator reads from it."""
    raw = body.get("prompt")
    if raw is not None and not isinstance(raw, str):
        raise SimError("bad_request", "prompt must be a string")
    text = raw or ""
    if len(text) > MAX_PROMPT:
        raise SimError("bad_request", f"prompt is longer than {MAX_PROMPT} characters")
    if not state.config.embedded:
        text, _ = faults_mod.strip_prompt(text)
    if required and not text.strip():
        raise SimError("bad_request", "prompt is required")
    if state.config.moderation_word and state.config.moderation_word.lower() in text.lower():
        raise SimError("forbidden")
    return text.strip()


def _no_callback_when_embedded(state: SimState, body: dict[str, Any]) -> None:
    if body.get("callback_url") and state.config.embedded:
        # it would POST wherever a request says, from the user's machine
        raise SimError("bad_request", "callback_url is not available in the embedded simulator")


def _action(body: dict[str, Any], allowed: tuple[str, ...]) -> str:
    name = body.get("action") or allowed[0]
    if name not in allowed:
        raise SimError("bad_request", f"Unsupported action `{name}`: use one of {', '.join(allowed)}")
    return str(name)


# --- the other task endpoints


def submit_edit(state: SimState, sub: Submission) -> SimTask:
    """``/edits``: repaint the picture at ``image_url`` as ``prompt`` says, wholly or where ``mask`` is
    white; like a grid, with a tile per candidate and no actions."""
    cfg, body = state.config, sub.body
    action = _action(body, ("generate",))
    mode = _mode(body, MODES, "edits")
    url = _url(body, "image_url", required=True)
    text = _text(state, body, required=True)
    mask = body.get("mask")
    if mask not in (None, "") and not isinstance(mask, str):
        raise SimError("bad_request", "mask must be base64 image data (white = repaint)")
    decoded = check_mask(cfg, mask, None) if mask else None
    _no_callback_when_embedded(state, body)
    with state.lock:
        task_id, key = _new_id(state, sub)
        recipe, result = edit_plan(key, url, text, decoded, known_aspect(state, url))
        plan = plan_timing(cfg, "edits", mode, sub.headers, sub.faults)
        return _register(
            state, sub, task_id, "edits", mode, action, plan, kind=actions.Kind.GRID, recipe=recipe, result=result
        )


def _video_index(body: dict[str, Any]) -> int:
    index = body.get("video_index", 0)
    if isinstance(index, str) and index.strip().isdigit():
        index = int(index)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 3:
        raise SimError("bad_request", "video_index must be 0, 1, 2 or 3 (which of the video's four clips)")
    return index


def submit_video(state: SimState, sub: Submission) -> SimTask:
    """``/videos``: four clips from a picture (``generate``) or from one clip of a video (``extend``)."""
    cfg, body = state.config, sub.body
    action = _action(body, ("generate", "extend"))
    mode = _mode(body, VIDEO_MODES, "videos")
    resolution = body.get("resolution")
    if resolution is not None and resolution not in SHORT_SIDE:
        raise SimError("bad_request", f"Invalid resolution `{resolution}`: use 480p or 720p")
    loop = body.get("loop", False)
    if not isinstance(loop, bool):
        raise SimError("bad_request", "loop must be true or false")
    text = _text(state, body, required=False)
    end = _url(body, "end_image_url", required=False)
    _no_callback_when_embedded(state, body)
    parent, index, start = None, 0, ""
    if action == "generate":
        start = _url(body, "image_url", required=True)
    else:
        video_id = body.get("video_id")
        if video_id in (None, ""):
            raise SimError("bad_request", "video_id is required for action `extend`")
        parent = state.video(str(video_id))
        if parent is None:
            raise SimError("bad_request", f"Video `{video_id}` was not found")
        if parent.footage.segments >= MAX_SEGMENTS:
            raise SimError(
                "bad_request",
                f"Video `{video_id}` cannot be extended further (a video is extended at most {MAX_SEGMENTS - 1} times)",
            )
        index = _video_index(body)
    with state.lock:
        task_id, key = _new_id(state, sub)
        footage = video_footage(key, text, start, end, loop, resolution, known_aspect(state, start), parent, index)
        plan = plan_timing(cfg, "videos", mode, sub.headers, sub.faults)
        return _register(state, sub, task_id, "videos", mode, action, plan, footage=footage)


def submit_describe(state: SimState, sub: Submission) -> SimTask:
    """``/describe``: four prompts for the picture at ``image_url``, as a task of type describe."""
    url = _url(sub.body, "image_url", required=True)
    with state.lock:
        task_id, _ = _new_id(state, sub)
        plan = plan_timing(state.config, "describe", "fast", sub.headers, sub.faults)
        result = {"descriptions": describe_texts(state, url)}
        return _register(state, sub, task_id, "describe", "fast", "describe", plan, result=result)
