"""Principals: who may use a shared server, their workspace, limits and upstream token.

An authenticated caller is a principal: one named in the team file (``MJ_MCP_AUTH_TOKENS_FILE``),
found by the hash of its bearer token or by its OAuth subject, or an OAuth subject the file does not
name (with the default limits, billed to the operator). The file is TOML (JSON when it ends in .json):

    [principals.alice]
    tokens = ["sha256:<64 hex digits>"]     # `mj-mcp token` makes one; or: printf %s "$T" | sha256sum
    upstream_token_env = "ALICE_ACEDATACLOUD_TOKEN"   # or upstream_token_file = "/run/secrets/alice"
    max_running = 4                         # else MJ_MCP_LIMIT_RUNNING
    max_daily = 100                         # else MJ_MCP_LIMIT_DAILY
    oauth_subject = "auth0|66a1f0"          # her JWT's `sub`: the same principal under OAuth

- Only hashes: a copy of the file lets no one in. SHA-256, unsalted, is enough because the tokens are
  random (`mj-mcp token`: 256 bits), so no guess reaches one; a slow password hash would only slow
  every request.
- The AceDataCloud token is named, never written: the file holds no secret, so it can live in a
  ConfigMap or in git, while the token stays in a Secret (an environment variable or a mounted file).
- Reloaded without a restart: the file, and each upstream token file it names, is looked at at most
  once every ``RELOAD_CHECK_S``; a changed file is read and checked whole, and one that does not check
  keeps the previous roster (with an error in the log), so a typo never opens nor closes the server.
- A file that is gone fails closed: deleting it is how an operator may try to revoke everyone, so once
  it has been missing (or a directory) for ``MISSING_GRACE_S``, longer than any replace takes, every
  static token is refused, with an error in the log, until a valid file is back. OAuth callers are not
  refused: their tokens are the issuer's to revoke, and a subject the last file named keeps its entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .errors import SettingsError
from .limits import Limits

log = logging.getLogger("mj_mcp.principals")

VAR = "MJ_MCP_AUTH_TOKENS_FILE"
RELOAD_CHECK_S = 1.0  # a stat or two per second at most: a removed token stops working within this
# How long the file may be missing before static tokens are refused. An atomic replace (a rename, a
# Kubernetes ConfigMap's symlink swap) leaves no gap at all; an editor that deletes and then writes
# leaves milliseconds; so a file gone this long was removed.
MISSING_GRACE_S = 3.0
MAX_FILE_BYTES = 1 << 20
MAX_PRINCIPALS = 10_000
MAX_TOKENS = 32  # per principal: one per device, say
MAX_SECRET_FILE_BYTES = 4096
MAX_LIMIT = 1_000_000
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
HASH_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
SUBJECT_RE = re.compile(r"^[A-Za-z0-9._@:-]{1,100}$")  # a subject that may be written in a workspace key as is
KEYS = {"tokens", "upstream_token_env", "upstream_token_file", "max_running", "max_daily", "oauth_subject"}


def token_hash(token: str) -> str:
    """The form a bearer token takes in the team file."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    id: str  # the team file's name for it, or oauth:<subject>
    workspace: str  # every image it makes lives here, and it sees no other
    limits: Limits
    upstream_token: SecretStr | None = None  # its own AceDataCloud token; None: the operator's


@dataclass
class Roster:
    """One reading of the team file."""

    by_hash: dict[str, Principal] = field(default_factory=dict)
    by_subject: dict[str, Principal] = field(default_factory=dict)
    by_workspace: dict[str, Principal] = field(default_factory=dict)
    watched: dict[str, tuple[int, ...]] = field(default_factory=dict)  # path -> its stat when read


def _stamp(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)  # follows links: a Kubernetes ConfigMap swaps a symlink
    except OSError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} is larger than {limit} bytes")
    return data


def _limit(entry: Mapping[str, Any], key: str, default: int, who: str) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"{who}: {key} must be a whole number from 1 to {MAX_LIMIT}")
    return value


def _upstream_token(
    entry: Mapping[str, Any], who: str, env: Mapping[str, str], watched: dict[str, tuple[int, ...]]
) -> SecretStr | None:
    name, path = entry.get("upstream_token_env"), entry.get("upstream_token_file")
    if name is not None and path is not None:
        raise ValueError(f"{who}: give upstream_token_env or upstream_token_file, not both")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{who}: upstream_token_env must name an environment variable")
        value = env.get(name, "").strip()
        if not value:
            raise ValueError(f"{who}: the environment variable {name} (upstream_token_env) is not set")
        return SecretStr(value)
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ValueError(f"{who}: upstream_token_file must be a path")
        try:
            value = _read_bounded(Path(path), MAX_SECRET_FILE_BYTES, "upstream_token_file").decode().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{who}: upstream_token_file {path} cannot be read ({type(exc).__name__})") from None
        watched[path] = _stamp(path)
        if not value:
            raise ValueError(f"{who}: upstream_token_file {path} is empty")
        return SecretStr(value)
    return None


def parse(data: bytes, *, json_format: bool, defaults: Limits, env: Mapping[str, str]) -> Roster:
    """A roster from the file's bytes; ``ValueError`` naming the first problem (never quoting a token)."""
    try:
        # Only a team file in TOML needs the parser: start-up without one does not pay for it.
        import tomllib

        doc = json.loads(data) if json_format else tomllib.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid {'JSON' if json_format else 'TOML'} ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or set(doc) - {"principals"}:
        raise ValueError("expected one table, principals")
    table = doc.get("principals", {})
    if not isinstance(table, dict) or len(table) > MAX_PRINCIPALS:
        raise ValueError(f"principals must be a table of at most {MAX_PRINCIPALS}")
    roster = Roster()
    for pid, entry in table.items():
        who = f"principals.{pid}"[:80]
        if not ID_RE.match(pid):
            raise ValueError(f"{who}: a name is 1-64 letters, digits, . _ @ -")
        if not isinstance(entry, dict):
            raise ValueError(f"{who} must be a table")
        if "upstream_token" in entry:
            raise ValueError(
                f"{who}: write no token in this file; name it with upstream_token_env or upstream_token_file"
            )
        unknown = set(entry) - KEYS
        if unknown:
            raise ValueError(f"{who}: unknown key {sorted(unknown)[0][:40]!r}; known: {', '.join(sorted(KEYS))}")
        principal = Principal(
            id=pid,
            workspace=f"team:{pid}",
            limits=Limits(
                running=_limit(entry, "max_running", defaults.running, who),
                daily=_limit(entry, "max_daily", defaults.daily, who),
            ),
            upstream_token=_upstream_token(entry, who, env, roster.watched),
        )
        tokens = entry.get("tokens", [])
        if not isinstance(tokens, list) or len(tokens) > MAX_TOKENS:
            raise ValueError(f"{who}: tokens must be a list of at most {MAX_TOKENS} hashes")
        for i, text in enumerate(tokens):
            match = HASH_RE.match(text.strip().lower()) if isinstance(text, str) else None
            if match is None:
                raise ValueError(
                    f"{who}: tokens[{i}] is not a SHA-256 hash (sha256:<64 hex digits>); "
                    "the file holds hashes, never the tokens: `mj-mcp token` prints both"
                )
            digest = "sha256:" + match.group(1)
            if digest in roster.by_hash:
                raise ValueError(f"{who}: tokens[{i}] also belongs to {roster.by_hash[digest].id}")
            roster.by_hash[digest] = principal
        subject = entry.get("oauth_subject")
        if subject is not None:
            if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
                raise ValueError(f"{who}: oauth_subject must be the JWT's sub, 1-255 characters")
            if subject in roster.by_subject:
                raise ValueError(f"{who}: oauth_subject is also {roster.by_subject[subject].id}'s")
            roster.by_subject[subject] = principal
        roster.by_workspace[principal.workspace] = principal
    return roster


class Principals:
    """Every principal a shared server knows: the team file's (reloaded when it changes), and any
    OAuth subject, with the default limits."""

    def __init__(
        self,
        defaults: Limits,
        path: Path | None = None,
        env: Mapping[str, str] | None = None,
        *,
        missing_grace_s: float = MISSING_GRACE_S,
        check_every_s: float = RELOAD_CHECK_S,
    ) -> None:
        self.defaults = defaults
        self.path = path
        self.missing_grace_s = missing_grace_s
        self.check_every_s = check_every_s
        self._env = os.environ if env is None else env
        self._roster = Roster()
        self._next_check = 0.0
        self._missing_since: float | None = None  # monotonic time the file was first found gone
        # The file has been gone past the grace period, and no valid file has come back since.
        self.static_tokens_refused = False
        if path is not None:
            try:
                self._roster = self._load()
            except ValueError as exc:
                raise SettingsError(f"{VAR}={str(path)[:120]}: {exc}") from None
            self._next_check = time.monotonic() + check_every_s

    def _load(self) -> Roster:
        assert self.path is not None
        stamp = _stamp(str(self.path))
        if self.path.is_dir():  # Docker bind-mounts a directory where the file to mount was missing
            raise ValueError(
                "is a directory, not the team file. Docker makes one when the file it should mount "
                "does not exist: create the file (see `mj-mcp token`), remove the directory, restart"
            )
        try:
            data = _read_bounded(self.path, MAX_FILE_BYTES, "the file")
        except OSError as exc:
            raise ValueError(f"cannot be read ({type(exc).__name__})") from None
        roster = parse(data, json_format=self.path.suffix.lower() == ".json", defaults=self.defaults, env=self._env)
        roster.watched[str(self.path)] = stamp
        return roster

    def roster(self) -> Roster:
        """The current roster, read again first if the file (or a token file it names) changed."""
        now = time.monotonic()
        if self.path is None or now < self._next_check:
            return self._roster
        self._next_check = now + self.check_every_s
        if not _is_file(self.path):
            self._gone(now)
            return self._roster
        self._missing_since = None
        if all(_stamp(p) == s for p, s in self._roster.watched.items()):
            return self._roster
        try:
            self._roster = self._load()
            log.warning("%s reloaded: %d principals", VAR, len(self._roster.by_workspace))
            self.static_tokens_refused = False
        except ValueError as exc:
            kept = "static tokens stay refused" if self.static_tokens_refused else "the previous one stays in force"
            log.error("%s changed but is not valid, so %s: %s", VAR, kept, exc)
            self._roster.watched = {p: _stamp(p) for p in self._roster.watched}  # say it once per change
        return self._roster

    def _gone(self, now: float) -> None:
        """The file is missing (or a directory): past the grace period, static tokens are refused."""
        assert self.path is not None
        # A file that comes back differs from this stamp whatever its own: it is read again then.
        self._roster.watched[str(self.path)] = ()
        if self._missing_since is None:
            self._missing_since = now
        if not self.static_tokens_refused and now - self._missing_since >= self.missing_grace_s:
            self.static_tokens_refused = True
            log.error(
                "%s=%s has been gone for %g s (deleted, or replaced by a directory): every static token is "
                "refused until a valid file is back; OAuth tokens are not affected",
                VAR,
                str(self.path)[:120],
                self.missing_grace_s,
            )

    def by_token(self, token: str) -> Principal | None:
        """The team file's principal holding this bearer token, if any; None for every token while the
        file is gone (fail closed)."""
        roster = self.roster()
        return None if self.static_tokens_refused else roster.by_hash.get(token_hash(token))

    def by_subject(self, subject: str) -> Principal:
        """The principal of an OAuth subject: the file's when it names it, else one of its own."""
        known = self.roster().by_subject.get(subject)
        if known is not None:
            return known
        # A subject that cannot be written as is becomes "#<digest>": no raw subject starts with "#", so
        # no user can pick a subject that names another's workspace.
        key = subject if SUBJECT_RE.match(subject) else "#" + hashlib.sha256(subject.encode()).hexdigest()[:40]
        return Principal(id=f"oauth:{key}", workspace=f"oauth:{key}", limits=self.defaults)

    def upstream_token(self, workspace: str) -> str | None:
        """The upstream token a workspace's jobs are billed to; None for the operator's."""
        principal = self.roster().by_workspace.get(workspace)
        token = principal.upstream_token if principal else None
        return token.get_secret_value() if token else None
