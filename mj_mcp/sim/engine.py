"""Tasks from submission to result: validation (contract 6.3 step 1), the result plan, the job
timeline (6.4), the payloads upstream sends, and task records as ``/midjourney/tasks`` shows them.

Everything here runs on the simulator's event loop; state mutations hold ``state.lock`` briefly and
never across an ``await``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..core import actions, prompt
from ..core.actions import Kind
from . import faults as faults_mod
from .config import MODES, SimConfig, normalize_steps
from .errors import SimError
from .geometry import Size, double, fit_long_side, grid_size, half, parse_ar, ratio_of, scale
from .records import ImageRecord, Plan, Recipe, SimTask
from .render import LOCAL_IMAGE, seed_of
from .state import SimState

log = logging.getLogger("mj_mcp.sim")

_DASHES = "-\u2012\u2013\u2014\u2015\u2212"
_URL = re.compile(r"^https?://", re.IGNORECASE)
_VARY_STRENGTH = {"variation_subtle": 0.2, "variation_strong": 0.6}
_QUADRANT_VARY_STRENGTH = 0.45
_DEFAULT_FAIL_AT = 75  # task_fail without at_progress: after the first progress line


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


# --- validation -----------------------------------------------------------------------------------

def unrecognized(text: str, parsed: prompt.Parsed) -> list[str]:
    """The tokens upstream would list in "Unrecognized argument(s)": bad flags and their values."""
    bad = set(parsed.unknown) | set(parsed.stray)
    if not bad:
        return []
    out, collecting = [], False
    for tok in text.split()[len(parsed.urls):]:
        if tok in bad:
            out.append(tok)
            collecting = True
        elif tok[:1] in _DASHES:
            collecting = False
        elif collecting:
            out.append(tok)
    return out


def check_mask(cfg: SimConfig, mask: Any, source: ImageRecord | None) -> bytes | str:
    """A mask URL as is, or the decoded image bytes; in strict mode exactly the source's raw size."""
    if not isinstance(mask, str) or not mask.strip():
        raise SimError("bad_request", "mask is required for variation_region")
    mask = mask.strip()
    if _URL.match(mask):
        return mask
    if mask.startswith("data:"):
        if cfg.strict_mask:
            raise SimError("bad_request", "mask must be bare base64 image data, without a data: URL prefix")
        mask = mask.partition(",")[2]
    compact = "".join(mask.split())
    try:
        data = base64.b64decode(compact, validate=cfg.strict_mask)
    except (binascii.Error, ValueError):
        raise SimError("bad_request", "mask is not valid base64") from None
    if not cfg.strict_mask:
        return data
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
    except Exception:
        raise SimError("bad_request", "mask is not a decodable image (base64 of a grayscale JPEG or PNG)") from None
    if source is not None and size != source.raw:
        raise SimError(
            "bad_request",
            f"mask is {size[0]}x{size[1]} but must be the source image's raw size "
            f"{source.raw[0]}x{source.raw[1]}",
        )
    return data


# --- planning -------------------------------------------------------------------------------------

def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def timeline(cfg: SimConfig, act: actions.Action, mode: str, headers: Mapping[str, str],
             fs: list[faults_mod.Fault]) -> Plan:
    """Wall-clock timing and the ending of one task, from the knobs, ``x-fake-*`` headers and faults."""
    ts = _header_float(headers, "x-fake-time-scale")
    ts = cfg.time_scale if ts is None else max(0.0, ts)
    start = _header_float(headers, "x-fake-start-delay")
    start = cfg.start_delay(mode) if start is None else start
    step = _header_float(headers, "x-fake-step-interval")
    step = cfg.step_interval(mode) if step is None else step
    steps = cfg.progress_steps
    if "x-fake-progress-steps" in headers:
        try:
            steps = normalize_steps([int(p) for p in headers["x-fake-progress-steps"].split(",")])
        except ValueError:
            pass
    if not cfg.emit_zero_progress:
        steps = [p for p in steps if p > 0]
    speed = cfg.upscale_speedup if act.makes in (Kind.SINGLE, Kind.UPSCALED) else 1.0
    plan = Plan(start * speed * ts, step * speed * ts, list(steps), cfg.fail_at_progress,
                cfg.fail_code, cfg.fail_message, ts)
    if (f := faults_mod.first(fs, "stream_error_line")) is not None:
        plan.fail_at = 100
        plan.fail_code, plan.fail_message = f.text("code", cfg.fail_code), f.text("message", cfg.fail_message)
    if (f := faults_mod.first(fs, "task_fail")) is not None:
        plan.fail_at = f.int("at_progress", _DEFAULT_FAIL_AT)
        plan.fail_code, plan.fail_message = f.text("code", cfg.fail_code), f.text("message", cfg.fail_message)
    return plan


def _aspect_of_first_image(state: SimState, urls: list[str]) -> tuple[int, int] | None:
    """An image prompt without --ar takes the first image's shape, when the simulator made it."""
    for url in urls[:1]:
        m = LOCAL_IMAGE.search(url.split("?", 1)[0])
        rec = state.image(m.group(1)) if m else None
        if rec is not None:
            return ratio_of(rec.raw)
    return None


def result_plan(state: SimState, act: actions.Action, source: ImageRecord | None, parsed: prompt.Parsed,
                mask: bytes | str | None, key: str) -> tuple[Recipe, dict[str, Any]]:
    """What the finished task will be: its recipe, sizes and lineage (contract 6.3 step 4)."""
    name = act.name
    if name == "generate" or source is None:
        ar = parse_ar(parsed.flag("ar")) or _aspect_of_first_image(state, parsed.urls)
        thumb = grid_size(ar)
        seed = seed_of("generate", parsed.text, tuple(parsed.urls), parsed.flag("seed"))
        recipe = Recipe(key, "generate", double(thumb), seed, text=parsed.text, urls=tuple(parsed.urls))
        return recipe, {"raw": double(thumb), "thumb": thumb, "cell": thumb, "text": parsed.text,
                        "urls": tuple(parsed.urls)}
    lineage = {"text": source.text, "urls": source.urls}
    seed = seed_of(name, source.image_id, key)
    if act.makes == Kind.SINGLE:
        raw = source.cell if source.kind == Kind.GRID else source.raw
        recipe = Recipe(key, "crop", raw, seed, source=source.image_id,
                        quadrant=act.quadrant if source.kind == Kind.GRID else None, **lineage)
        return recipe, {"raw": raw, "thumb": half(raw), "cell": raw, **lineage}
    if act.makes == Kind.UPSCALED:
        base = source.base_single if source.kind == Kind.UPSCALED and source.base_single else source.image_id
        raw = scale(source.cell, 4.0 if name.endswith("4x") else 2.0)
        recipe = Recipe(key, "hq", raw, seed, source=base, **lineage)
        return recipe, {"raw": raw, "thumb": half(raw), "cell": source.cell, "base_single": base, **lineage}
    cell = source.cell
    raw = double(cell)
    common: dict[str, Any] = {"source": source.image_id, **lineage}
    if name == "reroll":
        recipe = Recipe(key, "generate", raw, seed, **lineage)
    elif act.quadrant:
        recipe = Recipe(key, "variation", raw, seed, quadrant=act.quadrant, strength=_QUADRANT_VARY_STRENGTH, **common)
    elif name in _VARY_STRENGTH:
        recipe = Recipe(key, "variation", raw, seed, strength=_VARY_STRENGTH[name], **common)
    elif name == "variation_region":
        region_seed = seed_of("region", source.image_id, parsed.text, key)
        recipe = Recipe(key, "region", raw, region_seed, mask=mask, **common)
    elif name.startswith("zoom_out"):
        recipe = Recipe(key, "zoom", raw, seed, factor=2.0 if name.endswith("2x") else 1.5, **common)
    elif name.startswith("pan_"):
        recipe = Recipe(key, "pan", raw, seed, direction=name[4:], **common)
    else:  # a grid action the catalogue may grow: a fresh take on the source
        recipe = Recipe(key, "variation", raw, seed, strength=_QUADRANT_VARY_STRENGTH, **common)
    return recipe, {"raw": raw, "thumb": cell, "cell": cell, **lineage}


# --- submission -----------------------------------------------------------------------------------

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
    text, _ = faults_mod.strip_prompt(raw_prompt or "")
    if name == "generate" and not text.strip():
        raise SimError("bad_request", "prompt is required")

    failure: tuple[str, str] | None = None
    source: ImageRecord | None = None
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
        plan = timeline(cfg, act, mode, sub.headers, sub.faults)
        if failure is not None:
            plan.fail_at, (plan.fail_code, plan.fail_message) = 0, failure
        recipe, result = (None, {}) if failure else result_plan(state, act, source, parsed, mask, key)
        callback = body.get("callback_url")
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
            changed=asyncio.Event(),
        )
        state.task_map[task.id] = task
        task.job = asyncio.get_running_loop().create_task(run_job(state, task))
    return task


# --- the timeline ---------------------------------------------------------------------------------

async def run_job(state: SimState, task: SimTask) -> None:
    """Queue, then one event per progress step, then the result or the planned failure."""
    plan = task.plan
    try:
        await asyncio.sleep(plan.start_delay)
        with state.lock:
            task.status, task.started_at = "processing", time.time()
        if plan.fail_at is not None and plan.fail_at <= 0:
            fail(state, task, plan.fail_code, plan.fail_message)
            return
        for i, p in enumerate(plan.steps):
            if i > 0 or p > 0:
                await asyncio.sleep(plan.interval)
            if plan.fail_at is not None and p >= plan.fail_at:
                fail(state, task, plan.fail_code, plan.fail_message)
                return
            if p >= 100:
                break
            progress(state, task, p)
        finish(state, task)
    except asyncio.CancelledError:
        raise
    except Exception:  # a simulator bug must still end the task, visibly
        log.exception("simulated job %s crashed", task.id)
        fail(state, task, "api_error", "Internal server error.")


def _notify(task: SimTask) -> None:
    ev, task.changed = task.changed, asyncio.Event()
    if ev is not None:
        ev.set()


def image_payload(task: SimTask, *, image_url: str, size: Size, image_id: str, raw_url: str, raw: Size,
                  progress: int, acts: list[str]) -> dict[str, Any]:
    """The documented 11 keys, in the guide's order."""
    return {
        "image_url": image_url,
        "image_width": size[0],
        "image_height": size[1],
        "image_id": image_id,
        "raw_image_url": raw_url,
        "raw_image_width": raw[0],
        "raw_image_height": raw[1],
        "progress": progress,
        "actions": acts,
        "task_id": task.id,
        "success": True,
    }


def progress(state: SimState, task: SimTask, p: int) -> None:
    """An intermediate event: a blurry preview, no actions, and (like upstream) a fresh image_id."""
    with state.lock:
        if task.done:
            return
        if state.config.stable_intermediate_image_id and task.events:
            image_id = task.events[0]["image_id"]
        else:
            image_id = state.ids.image_id()
        raw = fit_long_side(task.result.get("raw", (1024, 1024)), 512)
        thumb = half(raw)
        preview = f"{task.base_url}/__fake/img/{task.id}_grid_0.webp"
        payload = image_payload(task, image_url=f"{preview}?width={thumb[0]}&height={thumb[1]}", size=thumb,
                                image_id=image_id, raw_url=preview, raw=raw, progress=p, acts=[])
        task.progress = p
        task.events.append(payload)
        _notify(task)


def finish(state: SimState, task: SimTask) -> None:
    """Register the result image and emit the final payload."""
    with state.lock:
        if task.done or task.aborted:
            return
        cfg = state.config
        assert task.recipe is not None and task.kind is not None
        image_id = state.ids.image_id()
        r = task.result
        rec = ImageRecord(image_id=image_id, task_id=task.id, kind=task.kind,
                          actions=actions.ACTIONS_AFTER[task.kind], raw=r["raw"], thumb=r["thumb"],
                          cell=r["cell"], recipe=task.recipe, text=r["text"], urls=r["urls"],
                          base_single=r.get("base_single"))
        state.images[image_id] = rec
        url = f"{task.base_url}/__fake/img/{image_id}.png"
        payload = image_payload(task, image_url=f"{url}?width={rec.thumb[0]}&height={rec.thumb[1]}",
                                size=rec.thumb, image_id=image_id, raw_url=url, raw=rec.raw, progress=100,
                                acts=list(rec.actions))
        if task.request.get("split_images") is True and rec.kind == Kind.GRID:
            payload["sub_image_urls"] = [f"{task.base_url}/__fake/img/{image_id}/0_{k}.png" for k in range(4)]
        if cfg.include_trace_in_success:
            payload["trace_id"] = task.trace_id
        task.image_id = image_id
        task.final = payload
        task.progress = 100
        task.status, task.finished_at = "succeeded", time.time()
        task.events.append(payload)
        _notify(task)


def fail(state: SimState, task: SimTask, code: str, message: str) -> None:
    with state.lock:
        if task.done or task.aborted:
            return
        task.error = {"code": code, "message": message}
        task.final = {"success": False, "task_id": task.id, "trace_id": task.trace_id, "error": dict(task.error)}
        task.status, task.finished_at = "failed", time.time()
        task.events.append(task.final)
        _notify(task)


async def wait(task: SimTask, index: int, timeout: float | None = None) -> bool:
    """Wait until the task has more than ``index`` events or has ended; False on timeout."""
    if len(task.events) > index or task.done or task.aborted or task.changed is None:
        return True
    try:
        await asyncio.wait_for(task.changed.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True


async def wait_done(task: SimTask, timeout: float) -> bool:
    """Wait for the end of the task; False when ``timeout`` (wall seconds) passed first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not task.done and not task.aborted:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0 or not await wait(task, len(task.events), left):
            return task.done
    return task.done


# --- records --------------------------------------------------------------------------------------

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


def callback_body(state: SimState, task: SimTask, event: dict[str, Any]) -> dict[str, Any]:
    """A callback POST body: the event itself, the failure as the guide shows it (4.3)."""
    if event.get("success") is False:
        out = {"success": False, "task_id": task.id, "error": event["error"]}
        if state.config.callback_include_trace:
            out["trace_id"] = task.trace_id
        return out
    return event
