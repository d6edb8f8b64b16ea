"""Settings: each one declared once, here, with its environment variable, default, bounds and meaning.

``Settings.from_env`` reads and validates them all at start; a bad value stops the server with a message
naming the variable and what it accepts, before any client connects. The README's configuration table
is generated from these declarations (``env_table``) and a test keeps the two equal.

The API token is a ``SecretStr``: its repr and str are masked, so a settings object can be logged or
shown in a traceback without leaking it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .errors import SettingsError, quote

DEFAULT_BASE_URL = "https://api.acedata.cloud"
SIM_TOKEN = "test-token"  # what a standalone simulator accepts
WORKSPACE_RE = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def setting(default: Any, *, env: str, doc: str, **bounds: Any) -> Any:
    """A field read from ``env``; ``doc`` is the README's text for it."""
    return Field(default, description=doc, json_schema_extra={"env": env}, **bounds)


def mask_url(text: str) -> str:
    """A URL without the password in its user part (``redis://:secret@host`` -> ``redis://:***@host``),
    malformed ones too: everything between the user part's first ``:`` and the last ``@`` goes (a
    password may hold ``:``, ``/`` or ``@``)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"


def _user_dir(kind: str) -> Path:
    import platformdirs  # the XDG / Library / %LOCALAPPDATA% rules, kept upstream

    return Path(getattr(platformdirs, f"user_{kind}_dir")("mj-mcp", appauthor=False))


def default_cache_dir() -> Path:
    return _user_dir("cache")


def default_store_url() -> str:
    return f"sqlite:///{_user_dir('data') / 'mj-mcp.db'}"


def default_export_dir() -> Path:
    """The user's pictures folder / mj-mcp, or the app's data folder / exports where there is no pictures
    folder of its own (a server; an XDG setup pointing it at the home directory). Never the working
    directory, which hosts set to ``/`` or the home directory."""
    import platformdirs

    pictures = Path(platformdirs.user_pictures_dir())
    try:
        own = pictures.is_dir() and pictures.resolve() != Path.home().resolve()
    except (OSError, RuntimeError):
        own = False
    return pictures / "mj-mcp" if own else _user_dir("data") / "exports"


def validate_export_dir(path: str | os.PathLike[str]) -> Path:
    """The export directory as an absolute path; ``ValueError`` naming ``MJ_MCP_EXPORT_DIR`` when it is
    a filesystem root, the home directory or a folder containing it, or not a directory: export_image
    would write among the user's own files. Checked at start and again at every export."""
    shown = quote(os.fspath(path), 120)
    try:
        resolved = Path(path).expanduser().resolve()
        home = Path.home().resolve()
    except (OSError, RuntimeError) as exc:  # ~nosuchuser, a symlink loop
        raise ValueError(
            f"MJ_MCP_EXPORT_DIR={shown} cannot be resolved ({exc}); set it to a folder for images, "
            f"e.g. {default_export_dir()}"
        ) from None
    why = None
    if resolved == Path(resolved.anchor):
        why = "a filesystem root"
    elif resolved == home or resolved in home.parents:
        why = "the home directory" if resolved == home else "a folder containing the home directory"
    elif resolved.exists() and not resolved.is_dir():
        why = "not a directory"
    if why:
        raise ValueError(
            f"MJ_MCP_EXPORT_DIR={shown} is {why}: export_image would write among the user's own "
            f"files. Set it to a folder for images, e.g. {default_export_dir()}"
        )
    return resolved


class Settings(BaseModel):
    # NaN and infinity are refused as what they are: a NaN compares false with every bound, so pydantic
    # would otherwise blame whichever bound it checked last ("less than or equal to 3600").
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    api_token: SecretStr | None = setting(
        None,
        env="ACEDATACLOUD_API_TOKEN",
        doc="API token. Unset: the embedded simulator serves instead of the real API.",
    )
    base_url: str = setting(
        DEFAULT_BASE_URL, env="ACEDATACLOUD_API_BASE_URL", doc="Upstream base URL.", pattern=r"^https?://\S+$"
    )
    force_sim: bool = setting(
        False, env="MJ_MCP_SIM", doc="1 forces the embedded simulator even when a token is set (same as `--sim`)."
    )
    sim_url: str | None = setting(
        None,
        env="MJ_MCP_SIM_URL",
        pattern=r"^https?://\S+$",
        doc="Simulated mode: a standalone simulator (`mj-mcp sim`) to use instead of an embedded one, so that "
        "replicas share it.",
    )
    sim_time_scale: float = setting(
        0.15,
        env="MJ_MCP_SIM_TIME_SCALE",
        ge=0,
        le=100,
        doc="Simulator speed: 1.0 is real Midjourney pacing (~10 s a grid).",
    )
    heartbeat_s: float = setting(
        3.0, env="MJ_MCP_HEARTBEAT_SECONDS", gt=0, le=60, doc="Progress heartbeat while upstream is silent, seconds."
    )
    wait_s: float = setting(
        50.0,
        env="MJ_MCP_WAIT_SECONDS",
        ge=0,
        le=3600,  # below the 60 s at which many hosts cut a tool call
        doc="How long a generating tool waits before answering status running; the job goes on.",
    )
    task_wait_s: float = setting(
        2.0,
        env="MJ_MCP_TASK_WAIT_SECONDS",
        ge=0,
        le=60,
        doc="A client that takes MCP tasks gets a task for a generating call not finished within this many "
        "seconds (a cached or instant answer stays synchronous).",
    )
    confirm: list[str] = setting(
        ["videos"],
        env="MJ_MCP_CONFIRM",
        doc="What to ask the person about before paying for it, where the client can ask (elicitation): result "
        "kinds (`videos`, `upscaled`, `grid`, ...), actions (`upscale_4x`, ...) or operations (`blend`, ...), "
        "comma-separated, or `off` (default `videos`).",
    )
    timeout_s: float = setting(
        600.0, env="MJ_MCP_TIMEOUT_SECONDS", gt=0, le=7200, doc="Longest silence tolerated on an upstream connection."
    )
    retries: int = setting(
        2, env="MJ_MCP_RETRIES", ge=0, le=10, doc="Retries of provably safe failures: 429 and refused connections."
    )
    follow_limit_s: float = setting(
        3600.0,
        env="MJ_MCP_FOLLOW_LIMIT_SECONDS",
        ge=60,
        le=7 * 86400,
        doc="A background follower stops polling a task after this long; get_task picks it up again.",
    )
    max_images: int = setting(
        500,
        env="MJ_MCP_MAX_IMAGES",
        ge=10,
        le=1_000_000,
        doc="Images kept per workspace; the oldest finished ones are forgotten first.",
    )
    log_level: LogLevel = setting("WARNING", env="MJ_MCP_LOG_LEVEL", doc="stderr log level.")
    preview_px: int | None = setting(
        512, env="MJ_MCP_PREVIEW", ge=64, le=2048, doc="Thumbnail in results: long side in pixels, or `off`."
    )
    cache_dir: Path | None = setting(
        None,
        env="MJ_MCP_CACHE_DIR",
        doc="Where downloaded images are kept (default: the platform's user cache dir, mj-mcp).",
    )
    cache_mb: int = setting(
        500,
        env="MJ_MCP_CACHE_MB",
        ge=16,
        le=10_000_000,
        doc="Size cap of that cache in MB; least recently used images go first, and an image larger than the "
        "cap is still kept, alone.",
    )
    export_dir: Path | None = setting(
        None,
        env="MJ_MCP_EXPORT_DIR",
        doc="The only directory export_image writes into (default: the user's pictures folder/mj-mcp, or the "
        "data dir's exports folder where there is no pictures folder).",
    )
    store: str = setting(
        "",
        env="MJ_MCP_STORE",
        doc="Where names, records and running jobs are kept: `memory`, `sqlite:///path/to.db` (default: mj-mcp.db "
        "in the platform's user data dir), or `redis://[:password@]host:port/db` shared by replicas.",
    )
    workspace: str = setting(
        "default",
        env="MJ_MCP_WORKSPACE",
        pattern=WORKSPACE_RE,
        doc="The workspace of the local user (stdio, loopback HTTP): names persist in it across restarts.",
    )
    lease_s: float = setting(
        15.0,
        env="MJ_MCP_LEASE_SECONDS",
        ge=1,
        le=600,
        doc="A running job's follower lease, renewed every third of it: a replica that dies without a trace "
        "on this host has its jobs taken over within about twice this.",
    )
    public_url: str | None = setting(
        None,
        env="MJ_MCP_PUBLIC_URL",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        doc="Callback mode (HTTP): this server's public base URL. Submits then ask upstream to POST each "
        "task's result to an unguessable URL under it, instead of holding a stream open.",
    )
    allowed_hosts: list[str] = setting(
        [],
        env="MJ_MCP_ALLOWED_HOSTS",
        doc="HTTP: extra `Host` values accepted besides loopback ones, comma-separated (DNS-rebinding check).",
    )
    auth_tokens_file: Path | None = setting(
        None,
        env="MJ_MCP_AUTH_TOKENS_FILE",
        doc="HTTP: the team file (TOML, or JSON): hashes of bearer tokens, each principal's limits and own "
        'AceDataCloud token; reloaded when it changes. See "Deploy for a team".',
    )
    oauth_issuer: str | None = setting(
        None,
        env="MJ_MCP_OAUTH_ISSUER",
        pattern=r"^https?://\S+$",
        doc="HTTP: accept OAuth JWT access tokens from this issuer (its `iss`, exactly).",
    )
    oauth_jwks_url: str | None = setting(
        None,
        env="MJ_MCP_OAUTH_JWKS_URL",
        pattern=r"^https?://\S+$",
        doc="The issuer's JWKS (default: its `jwks_uri`, from the issuer's metadata).",
    )
    oauth_scopes: list[str] = setting(
        [], env="MJ_MCP_OAUTH_SCOPES", doc="Scopes an OAuth token must carry, comma-separated (default none)."
    )
    resource_url: str | None = setting(
        None,
        env="MJ_MCP_RESOURCE_URL",
        pattern=r"^https?://\S+$",
        doc="This server's MCP URL as clients reach it (`https://mj.example.com/mcp`): the audience of its "
        "OAuth tokens; its host is accepted in `Host`.",
    )
    limit_running: int = setting(
        10,
        env="MJ_MCP_LIMIT_RUNNING",
        ge=1,
        le=1_000_000,
        doc="Jobs an authenticated principal may have running at once (unless the team file says).",
    )
    limit_daily: int = setting(
        500,
        env="MJ_MCP_LIMIT_DAILY",
        ge=1,
        le=1_000_000,
        doc="Generations an authenticated principal may start per UTC day (unless the team file says).",
    )

    # Not read from the environment: derived at start, or tuned by tests and the bench.
    simulate: bool = False  # images are simulated: every result says so
    embed_sim: bool = False  # start the simulator in-process and point base_url at it
    retry_backoff_s: float = 1.0  # first back-off; doubles per retry (plus jitter)
    poll_interval_s: float = 3.0  # task polling after a dropped stream
    recover_attempts: int = 3  # retrieve_batch searches for a task whose submit lost its connection

    @field_validator("store")
    @classmethod
    def _store_url(cls, v: str) -> str:
        v = v.strip()
        if v and v != "memory" and not v.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError("expected `memory`, `sqlite:///path/to.db` or `redis://host:port/db`")
        return v

    @field_validator("confirm")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        # Which names exist is the operation table's and the action catalogue's to say (studio/consent.py).
        names = [name.strip().lower() for name in v]
        if any(not re.fullmatch(r"[a-z0-9_]{1,32}", name) for name in names):
            raise ValueError("expected names such as `videos` or `upscale_4x`, comma-separated, or `off`")
        return names

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else v

    def __repr_args__(self) -> Any:
        # A Redis URL may carry a password: a settings object is shown with it masked, like the token.
        for key, value in super().__repr_args__():
            yield key, (mask_url(value) if key == "store" else value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("export_dir")
    @classmethod
    def _a_folder_for_images(cls, v: Path | None) -> Path | None:
        return None if v is None else validate_export_dir(v)

    @property
    def store_url(self) -> str:
        return self.store or default_store_url()

    @property
    def authenticated(self) -> bool:
        """HTTP callers must authenticate (a team file, an OAuth issuer, or both)."""
        return self.auth_tokens_file is not None or self.oauth_issuer is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, force_sim: bool = False) -> Settings:
        """Every declared variable that is set (and not empty), validated; ``SettingsError`` lists
        each bad one with what it accepts."""
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for field, info in cls.model_fields.items():
            var = (info.json_schema_extra or {}).get("env") if isinstance(info.json_schema_extra, dict) else None
            value = env.get(str(var), "").strip() if var else ""
            if value:
                raw[field] = _parse(field, value)
                sources[field] = f"{var}={mask_url(value)[:60]!r}"
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else ""
                why = not_finite(field) if err["type"] == "finite_number" else err["msg"]
                problems.append(f"{sources.get(field, field)}: {why}")
            raise SettingsError("; ".join(problems)) from None
        token = settings.api_token.get_secret_value().strip() if settings.api_token else ""
        simulate = force_sim or settings.force_sim or not token
        if simulate and settings.sim_url:  # a shared simulator, with its standalone token (sim/knobs.py)
            token, base_url = SIM_TOKEN, settings.sim_url
        else:
            base_url = settings.base_url
        return settings.model_copy(
            update={
                "api_token": SecretStr(token) if token else None,
                "base_url": base_url.rstrip("/"),
                "simulate": simulate,
                "embed_sim": simulate and not settings.sim_url,
                "cache_dir": (settings.cache_dir or default_cache_dir()).expanduser(),
            }
        )


def not_finite(field: str) -> str:
    """What to say of a NaN or an infinity given for ``field``: that, and the range it takes."""
    b = {
        type(m).__name__: getattr(m, type(m).__name__.lower())
        for m in Settings.model_fields[field].metadata
        if type(m).__name__ in ("Ge", "Gt", "Le", "Lt")
    }
    if "Ge" in b and "Le" in b:
        wanted = f"from {b['Ge']:g} to {b['Le']:g}"
    else:
        low = f"at least {b['Ge']:g}" if "Ge" in b else f"above {b['Gt']:g}" if "Gt" in b else ""
        high = f"at most {b['Le']:g}" if "Le" in b else f"below {b['Lt']:g}" if "Lt" in b else ""
        wanted = ", ".join(part for part in (low, high) if part) or "finite"
    return f"not a number (NaN and infinity are refused); give a number {wanted}"


def _parse(field: str, value: str) -> Any:
    """The few variables whose text is not what pydantic reads directly."""
    if field == "preview_px" and value.lower() in {"off", "0", "no", "false", "none"}:
        return None
    if field == "force_sim":
        return value.lower() in {"1", "true", "yes", "on"}
    if field == "confirm" and value.lower() in {"off", "0", "no", "false", "none"}:
        return []
    if field in ("allowed_hosts", "oauth_scopes", "confirm"):
        return [h for h in re.split(r"[,\s]+", value) if h]
    return value


def env_table() -> str:
    """The README's configuration table, one row per variable, from the declarations above."""
    rows = ["| variable | meaning |", "|---|---|"]
    for info in Settings.model_fields.values():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "env" not in extra:
            continue
        doc = info.description or ""
        default = info.default
        if "(default" not in doc and default not in (None, "", [], False):
            doc += f" Default `{default}`."
        rows.append(f"| `{extra['env']}` | {doc} |")
    return "\n".join(rows)
