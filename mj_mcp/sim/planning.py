"""What a task will be, decided when it is accepted: its timing and ending (docs/upstream.md, "The simulator"), and the
image it will make, with sizes and lineage (6.3 step 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core import actions, prompt
from ..core.actions import Kind
from . import cdn
from . import faults as faults_mod
from .geometry import double, grid_size, half, parse_ar, ratio_of, scale
from .knobs import SimConfig, normalize_steps
from .records import Plan, Recipe, SimImage
from .render import seed_of
from .state import SimState

_VARY_STRENGTH = {"variation_subtle": 0.2, "variation_strong": 0.6}
_QUADRANT_VARY_STRENGTH = 0.45
_DEFAULT_FAIL_AT = 75  # task_fail without at_progress: after the first progress line


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def plan_timing(cfg: SimConfig, act: actions.Action, mode: str, headers: Mapping[str, str],
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
    image = cdn.own_image(urls[0], state.image) if urls else None
    return ratio_of(image.raw) if image is not None else None


def result_plan(state: SimState, act: actions.Action, source: SimImage | None, parsed: prompt.Parsed,
                mask: bytes | str | None, key: str) -> tuple[Recipe, dict[str, Any]]:
    """What the finished task will be: its recipe, sizes and lineage (docs/upstream.md, "Actions")."""
    name = act.name
    if name == "generate" or source is None:
        ar = parse_ar(parsed.flag("ar")) or _aspect_of_first_image(state, parsed.urls)
        thumb = grid_size(ar)
        seed = seed_of("generate", parsed.text, tuple(parsed.urls), parsed.flag("seed"))
        recipe = Recipe(key, "generate", double(thumb), seed, text=parsed.text, urls=tuple(parsed.urls))
        return recipe, {"raw": double(thumb), "thumb": thumb, "cell": thumb, "text": parsed.text,
                        "urls": tuple(parsed.urls)}
    lineage: dict[str, Any] = {"text": source.text, "urls": source.urls}
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
