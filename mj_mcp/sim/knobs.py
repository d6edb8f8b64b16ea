"""Every simulator knob (docs/upstream.md, "The simulator"), with its defaults.

Defaults follow the documented happy path; every fault and oddity is opt-in. Delays are in
simulated seconds and are multiplied by ``time_scale`` (0.01 makes a grid take about 0.1 s), except
fault parameters such as ``slow;delay=2``, which are wall-clock seconds so clients can hit their own
read timeouts, and ``heartbeat_s``, which is a transport-level pace.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODES = ("fast", "relax", "turbo")
# Video has no relax mode.
VIDEO_MODES = ("fast", "turbo")
TASK_TYPES = ("imagine", "edits", "videos", "describe")
# Knobs that decide what the simulator exposes and reaches: set by whoever starts it (SimConfig,
# ``state.configure`` in process), never through its own HTTP control API.
START_ONLY = frozenset(
    {"embedded", "control_secret", "fetch_foreign", "fetch_allow_private", "archive", "archive_tasks"}
)


def _per_mode(value: Any) -> Any:
    """Accept one number for every mode, or a partial {mode: seconds} mapping."""
    if isinstance(value, (int, float)):
        return {m: float(value) for m in MODES}
    return value


def normalize_steps(values: list[int]) -> list[int]:
    """Distinct progress values in 0..100, ascending, always ending at 100."""
    steps = sorted({int(p) for p in values if 0 <= int(p) <= 100})
    if not steps or steps[-1] != 100:
        steps.append(100)
    return steps


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- auth and error bodies (6.2)
    tokens: list[str] = Field(default_factory=lambda: ["test-token"])
    exhausted_tokens: list[str] = Field(default_factory=list)  # 403 used_up
    tokens_for_other_api: list[str] = Field(default_factory=list)  # 400 token_mismatched
    error_shape: Literal["guide", "openapi", "random"] = "guide"
    seed: int | None = None  # ids, flaky faults and reroll pictures repeat exactly when set

    # --- job timeline (6.4)
    time_scale: float = Field(1.0, ge=0.0)
    start_delay_s: dict[str, float] = Field(default_factory=lambda: {"fast": 2.0, "turbo": 1.0, "relax": 10.0})
    step_interval_s: dict[str, float] = Field(default_factory=lambda: {"fast": 3.0, "turbo": 1.5, "relax": 8.0})
    progress_steps: list[int] = Field(default_factory=lambda: [0, 35, 75, 100])
    emit_zero_progress: bool = False
    upscale_speedup: float = Field(0.5, gt=0.0)  # timing multiplier for upscale actions
    # Timing multiplier per endpoint: a video takes three times a grid's time (upstream: 1-2 minutes),
    # an edit half as long again, a describe (one answer, no progress lines) about 3 s.
    pace: dict[str, float] = Field(
        default_factory=lambda: {"imagine": 1.0, "edits": 1.5, "videos": 3.0, "describe": 0.6}
    )
    fail_at_progress: int | None = None  # every task fails on reaching this progress
    fail_code: str = "api_error"
    fail_message: str = "fetch failed"
    stable_intermediate_image_id: bool = False  # upstream hands out a new image_id on every step
    destroy_previews: bool = True  # preview .webp URLs 404 once the task has finished
    serve_images: bool = True  # False: every image URL 404s, as expired CDN links do

    # --- /imagine replies (6.3)
    async_ack_extra: list[Literal["trace_id", "success"]] = Field(default_factory=lambda: ["trace_id"])  # type: ignore[arg-type]
    include_trace_in_success: bool = False
    sync_failure_status: Literal["mapped", "200"] = "mapped"
    default_timeout_s: float = 480.0  # the body's ``timeout`` default (simulated seconds)
    strict_actions: bool = True
    strict_mask: bool = True  # base64 masks must decode to an image of the source's exact raw size
    unknown_image_id_mode: Literal["http_400", "task_fail"] = "http_400"
    bad_flag_mode: Literal["auto", "http_400", "task_fail"] = "auto"  # auto: 400 when sync, else a failed task
    moderation_word: str = "__nsfw__"
    max_image_urls: int = 5

    # --- /tasks records (6.3)
    expose_progress_in_task: bool = False
    task_time_field: Literal["elapsed", "duration", "both"] = "both"
    task_state_field: bool = False

    # --- ndjson streaming (6.5)
    ndjson_content_type: str = "application/x-ndjson"
    ndjson_newline: Literal["crlf", "lf"] = "crlf"
    stream_header_delay_s: float = 0.0
    heartbeat_s: float | None = None  # blank lines while waiting (wall seconds)

    # --- callbacks (6.6)
    callback_delay_s: float = 0.0
    callback_retries: int = 0
    callback_retry_backoff_s: list[float] = Field(default_factory=lambda: [1.0, 2.0, 4.0])
    callback_timeout_s: float = 10.0  # wall seconds
    callback_duplicate: bool = False
    callback_out_of_order: bool = False
    callback_include_trace: bool = False

    # --- faults applied to every /midjourney/* request (6.7), e.g. ["flaky;p=0.3;fault2=500"]
    faults: list[str] = Field(default_factory=list)

    # --- rendering: decoded pixels (4 bytes a pixel) and encoded files, least recently used first
    render_cache_mb: int = Field(256, ge=1)

    # --- exposure (fixed at start: the control API refuses to change them)
    embedded: bool = False  # inside an MCP server: no control API, secret image URLs, no fetches, no logs
    control_secret: str | None = None  # standalone: /__fake/* control needs it in the x-sim-secret header
    fetch_foreign: bool = False  # standalone: fetch image-prompt and mask URLs that are not our own images
    fetch_allow_private: list[str] = Field(default_factory=list)  # CIDRs fetches may reach anyway: tests only
    fetch_timeout_s: float = Field(3.0, gt=0.0)  # wall seconds for a whole fetch, redirects included
    fetch_max_bytes: int = Field(20 * 1024 * 1024, gt=0)
    fetch_max_pixels: int = Field(16_000_000, gt=0)  # checked from the image header, before decoding
    # An embedded simulator's memory on disk (archive.py): an SQLite file of the tasks and images it
    # served, so a restarted server still reads, previews and acts on them; the newest tasks are kept.
    archive: str | None = None
    archive_tasks: int = Field(10_000, ge=1)

    _per_mode_start = field_validator("start_delay_s", mode="before")(_per_mode)
    _per_mode_step = field_validator("step_interval_s", mode="before")(_per_mode)

    @field_validator("start_delay_s", "step_interval_s")
    @classmethod
    def _fill_modes(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(MODES)
        if unknown:
            raise ValueError(f"unknown mode(s) {sorted(unknown)}; modes are {MODES}")
        return v

    @field_validator("pace")
    @classmethod
    def _paces(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(TASK_TYPES)
        if unknown or any(x < 0 for x in v.values()):
            raise ValueError(f"pace: a multiplier >= 0 for each of {TASK_TYPES}")
        return v

    @field_validator("fetch_allow_private")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return v

    @model_validator(mode="after")
    def _embedded_reaches_nothing(self) -> SimConfig:
        if self.embedded and (self.fetch_foreign or self.fetch_allow_private):
            raise ValueError("an embedded simulator fetches nothing: fetch_foreign is for standalone ones")
        return self

    @model_validator(mode="after")
    def _archive_is_embedded(self) -> SimConfig:
        # Tasks in the archive belong to no token (the embedded one is new at every start): only a
        # simulator with one user may keep one.
        if self.archive is not None and not self.embedded:
            raise ValueError("archive is for an embedded simulator (its tasks belong to whoever runs it)")
        return self

    @field_validator("progress_steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        return normalize_steps(v)

    def start_delay(self, mode: str) -> float:
        return self.start_delay_s.get(mode, {"fast": 2.0, "turbo": 1.0, "relax": 10.0}[mode])

    def step_interval(self, mode: str) -> float:
        return self.step_interval_s.get(mode, {"fast": 3.0, "turbo": 1.5, "relax": 8.0}[mode])
