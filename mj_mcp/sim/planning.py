"""What a task will be, decided when it is accepted: its timing and ending (docs/upstream.md, "The
simulator"), and what it will make: an image with its sizes and lineage (6.3 step 4), an edit's
repaint, a video's footage, a describe's prompts. An edit, video or describe of a foreign picture that
a standalone simulator may fetch takes that picture's shape once it is fetched (``prepare``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import anyio

from ..core import actions, prompt
from ..core.actions import Kind
from . import cdn, texts
from . import faults as faults_mod
from .clips import frame_size
from .geometry import double, grid_size, half, parse_ar, plain_ratio, scale
from .knobs import SimConfig, normalize_steps
from .records import Footage, Plan, Recipe, SimImage, SimTask, SimVideo, TaskType
from .render import seed_of
from .state import SimState

# Midjourney's --seed takes 0-4294967295.
SEED_RANGE = 2**32
DEFAULT_RESOLUTION = "720p"

_VARY_STRENGTH = {"variation_subtle": 0.2, "variation_strong": 0.6}
_QUADRANT_VARY_STRENGTH = 0.45
_DEFAULT_FAIL_AT = 75  # task_fail without at_progress: after the first progress line


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def plan_timing(
    cfg: SimConfig,
    task_type: TaskType,
    mode: str,
    headers: Mapping[str, str],
    fs: list[faults_mod.Fault],
    speed: float = 1.0,
) -> Plan:
    """Wall-clock timing and the ending of one task, from the knobs, ``x-fake-*`` headers and faults;
    ``speed`` multiplies the endpoint's pace (upscales are faster)."""
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
    if task_type == "describe":
        # one answer, no progress lines
        steps = [100]
    speed *= cfg.pace.get(task_type, 1.0)
    plan = Plan(
        start * speed * ts, step * speed * ts, list(steps), cfg.fail_at_progress, cfg.fail_code, cfg.fail_message, ts
    )
    if (f := faults_mod.first(fs, "stream_error_line")) is not None:
        plan.fail_at = 100
        plan.fail_code, plan.fail_message = f.text("code", cfg.fail_code), f.text("message", cfg.fail_message)
    if (f := faults_mod.first(fs, "task_fail")) is not None:
        plan.fail_at = f.int("at_progress", _DEFAULT_FAIL_AT)
        plan.fail_code, plan.fail_message = f.text("code", cfg.fail_code), f.text("message", cfg.fail_message)
    return plan


def upscale_speed(cfg: SimConfig, act: actions.Action) -> float:
    return cfg.upscale_speedup if act.makes in (Kind.SINGLE, Kind.UPSCALED) else 1.0


def known_aspect(state: SimState, url: str) -> tuple[int, int] | None:
    """The shape of the picture at ``url`` when the simulator made it, else None (not known yet)."""
    picture = cdn.own_picture(url, state.image) if url else None
    return plain_ratio(picture.size) if picture is not None else None


def _aspect_of_first_image(state: SimState, urls: list[str]) -> tuple[int, int] | None:
    """An image prompt without --ar takes the first image's shape, when the simulator made it."""
    return known_aspect(state, urls[0]) if urls else None


def result_plan(
    state: SimState,
    act: actions.Action,
    source: SimImage | None,
    parsed: prompt.Parsed,
    mask: bytes | str | None,
    key: str,
) -> tuple[Recipe, dict[str, Any]]:
    """What the finished task will be: its recipe, sizes and lineage (docs/upstream.md, "Actions")."""
    name = act.name
    if name == "generate" or source is None:
        ar = parse_ar(parsed.flag("ar")) or _aspect_of_first_image(state, parsed.urls)
        thumb = grid_size(ar)
        seed = generate_seed(parsed)
        recipe = Recipe(key, "generate", double(thumb), seed, text=parsed.text, urls=tuple(parsed.urls))
        return recipe, {
            "raw": double(thumb),
            "thumb": thumb,
            "cell": thumb,
            "text": parsed.text,
            "urls": tuple(parsed.urls),
        }
    lineage: dict[str, Any] = {"text": source.text, "urls": source.urls}
    seed = seed_of(name, source.image_id, key) % SEED_RANGE
    if act.makes == Kind.SINGLE:
        raw = source.cell if source.kind == Kind.GRID else source.raw
        recipe = Recipe(
            key,
            "crop",
            raw,
            seed,
            source=source.image_id,
            quadrant=act.quadrant if source.kind == Kind.GRID else None,
            **lineage,
        )
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


def generate_seed(parsed: prompt.Parsed) -> int:
    """A new grid's seed: the prompt's ``--seed`` when it has one, so that the seed /midjourney/seed
    reports for a grid makes the same grid again with the same prompt; else one from the prompt."""
    given = (parsed.flag("seed") or "").strip()
    if given.isdigit() and int(given) < SEED_RANGE:
        return int(given)
    return seed_of("generate", parsed.text, tuple(parsed.urls), given or None) % SEED_RANGE


def seed_for(state: SimState, image: SimImage) -> str:
    """What /midjourney/seed answers for an image: the seed of the job that drew it (an upscale's is
    its grid's, as in Midjourney), as a decimal string."""
    seen = 0
    while image.recipe.op in ("crop", "hq") and image.recipe.source and seen < 16:
        source = state.image(image.recipe.source)
        if source is None:
            break
        image, seen = source, seen + 1
    return str(image.recipe.seed % SEED_RANGE)


def edit_plan(
    key: str, url: str, text: str, mask: bytes | str | None, aspect: tuple[int, int] | None
) -> tuple[Recipe, dict[str, Any]]:
    """An edit: four repaints of the picture at ``url``, a grid of its shape at the full size (the
    answer's image and raw image are that grid, as in upstream's example), a tile per quadrant."""
    cell = grid_size(aspect)
    raw = double(cell)
    recipe = Recipe(key, "edit", raw, seed_of("edit", url, text, key), text=text, urls=(url,), mask=mask)
    return recipe, {"raw": raw, "thumb": raw, "cell": cell, "text": text, "urls": (url,)}


def video_footage(
    key: str,
    text: str,
    start: str,
    end: str,
    loop: bool,
    resolution: str | None,
    aspect: tuple[int, int] | None,
    parent: SimVideo | None = None,
    index: int = 0,
) -> Footage:
    """A video's four clips: on the start picture's shape, or an extension on its parent's."""
    seed = seed_of("videos", text, start, key)
    if parent is None:
        size = frame_size(aspect or (1, 1), resolution or DEFAULT_RESOLUTION)
        return Footage(key, size, seed, text=text, start=start, end=end, loop=loop)
    size = parent.footage.size if resolution is None else frame_size(plain_ratio(parent.footage.size), resolution)
    return Footage(
        key,
        size,
        seed,
        text=text,
        end=end,
        loop=loop,
        parent=parent.video_id,
        index=index,
        segments=parent.footage.segments + 1,
    )


def describe_texts(state: SimState, url: str) -> list[str]:
    """Describe's four prompts: from the picture's own prompt when the simulator made it."""
    picture = cdn.own_picture(url, state.image)
    if picture is not None:
        return texts.describe(picture.image.text, plain_ratio(picture.size), picture.image.image_id)
    return texts.describe("", (1, 1), url)


def _input_url(task: SimTask) -> str:
    """The foreign picture a task's shape depends on, if any."""
    if task.type in ("edits", "describe") or (task.type == "videos" and task.footage and not task.footage.parent):
        url = task.request.get("image_url")
        return url if isinstance(url, str) else ""
    return ""


async def prepare(state: SimState, task: SimTask) -> None:
    """Before a task starts: a foreign picture a standalone simulator may fetch is fetched (in a worker
    thread, within inputs.py's limits), and what the task makes takes its shape."""
    url = _input_url(task)
    if not url or not state.config.fetch_foreign or cdn.own_picture(url, state.image) is not None:
        return
    img = await anyio.to_thread.run_sync(state.inputs.image, url)
    if img is None:
        return
    aspect = plain_ratio(img.size)
    with state.lock:
        if task.type == "edits" and task.recipe is not None:
            cell = grid_size(aspect)
            task.recipe = dataclasses.replace(task.recipe, size=double(cell))
            task.result.update(raw=double(cell), thumb=double(cell), cell=cell)
        elif task.type == "videos" and task.footage is not None:
            resolution = task.request.get("resolution") or DEFAULT_RESOLUTION
            task.footage = dataclasses.replace(task.footage, size=frame_size(aspect, resolution))
        elif task.type == "describe":
            task.result["descriptions"] = texts.describe("", plain_ratio(img.size), url)
