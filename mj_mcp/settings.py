"""Settings, read once from the environment.

The API token is a ``SecretStr``: its repr and str are masked, so a settings object can be logged or
shown in a traceback without leaking it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, SecretStr

from .media.export import validate_export_dir

DEFAULT_BASE_URL = "https://api.acedata.cloud"

# Every variable we read, with its meaning; the README's table is checked against this by a test.
ENV_VARS: dict[str, str] = {
    "ACEDATACLOUD_API_TOKEN": "API token. Unset: the embedded simulator serves instead of the real API.",
    "ACEDATACLOUD_API_BASE_URL": f"Upstream base URL (default {DEFAULT_BASE_URL}).",
    "MJ_MCP_SIM": "1 forces the embedded simulator even when a token is set (same as --sim).",
    "MJ_MCP_SIM_TIME_SCALE": "Simulator speed: 1.0 is real Midjourney pacing (~10 s a grid); default 0.15.",
    "MJ_MCP_HEARTBEAT_SECONDS": "Progress heartbeat while upstream is silent (default 3).",
    "MJ_MCP_WAIT_SECONDS": "How long a generating tool waits before answering status running (default 50); the job goes on.",
    "MJ_MCP_TIMEOUT_SECONDS": "Longest silence tolerated on an upstream connection (default 600).",
    "MJ_MCP_RETRIES": "Retries of provably safe failures: 429 and refused connections (default 2).",
    "MJ_MCP_MAX_IMAGES": "Images kept per workspace; the oldest finished ones are forgotten first (default 500).",
    "MJ_MCP_LOG_LEVEL": "stderr log level (default WARNING).",
    "MJ_MCP_PREVIEW": "Thumbnail in results: long side in pixels (default 512), or off.",
    "MJ_MCP_CACHE_DIR": "Where downloaded images are kept (default: the platform's user cache dir, mj-mcp).",
    "MJ_MCP_CACHE_MB": "Size cap of that cache; least recently used images go first (default 500).",
    "MJ_MCP_EXPORT_DIR": "The only directory export_image writes into (default: the user's pictures folder/mj-mcp).",
}


class Settings(BaseModel):
    api_token: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    simulate: bool = False  # images are simulated: every result says so
    embed_sim: bool = False  # start the simulator in-process and point base_url at it
    sim_time_scale: float = 0.15
    heartbeat_s: float = 3.0
    wait_s: float = 50.0  # below the 60 s at which many hosts cut a tool call
    timeout_s: float = 600.0
    retries: int = 2
    retry_backoff_s: float = 1.0  # first back-off; doubles per retry (plus jitter)
    poll_interval_s: float = 3.0  # task polling after a dropped stream
    follow_limit_s: float = 3600.0  # stop polling a task after this; get_task resumes it
    recover_attempts: int = 3  # retrieve_batch searches for a task whose submit lost its connection
    max_images: int = 500
    log_level: str = "WARNING"
    preview_px: int | None = 512  # None: no thumbnails in results
    cache_dir: Path | None = None  # None: no disk cache (from_env fills in the platform's default)
    cache_mb: int = 500
    export_dir: Path | None = None  # None: media.export.default_export_dir()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, force_sim: bool = False) -> Settings:
        env = os.environ if env is None else env
        token = env.get("ACEDATACLOUD_API_TOKEN", "").strip()
        simulate = force_sim or not token or env.get("MJ_MCP_SIM", "") in {"1", "true", "yes"}
        return cls(
            api_token=SecretStr(token) if token else None,
            base_url=env.get("ACEDATACLOUD_API_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
            simulate=simulate,
            embed_sim=simulate,
            sim_time_scale=float(env.get("MJ_MCP_SIM_TIME_SCALE", 0.15)),
            heartbeat_s=float(env.get("MJ_MCP_HEARTBEAT_SECONDS", 3.0)),
            wait_s=float(env.get("MJ_MCP_WAIT_SECONDS", 50.0)),
            timeout_s=float(env.get("MJ_MCP_TIMEOUT_SECONDS", 600.0)),
            retries=int(env.get("MJ_MCP_RETRIES", 2)),
            max_images=int(env.get("MJ_MCP_MAX_IMAGES", 500)),
            log_level=env.get("MJ_MCP_LOG_LEVEL", "WARNING").upper(),
            preview_px=_preview_px(env.get("MJ_MCP_PREVIEW", "512")),
            cache_dir=Path(env.get("MJ_MCP_CACHE_DIR") or _default_cache_dir()).expanduser(),
            cache_mb=int(env.get("MJ_MCP_CACHE_MB", 500)),
            export_dir=validate_export_dir(env["MJ_MCP_EXPORT_DIR"]) if env.get("MJ_MCP_EXPORT_DIR") else None,
        )


def _preview_px(value: str) -> int | None:
    value = value.strip().lower()
    if value in {"off", "0", "no", "false", "none"}:
        return None
    px = int(value)
    if not 64 <= px <= 2048:
        raise ValueError(f"MJ_MCP_PREVIEW must be off or 64-2048 pixels, not {value}")
    return px


def _default_cache_dir() -> str:
    from platformdirs import user_cache_dir  # the XDG / Library/Caches / %LOCALAPPDATA% rules, kept upstream

    return user_cache_dir("mj-mcp", appauthor=False)
