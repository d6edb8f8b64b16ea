"""An embedded simulator's memory on disk: every task it accepted and every image and video it made,
in one SQLite file (``SimConfig.archive``, next to the server's store), so that a restarted server
finds yesterday's simulated images and videos as it would find real ones: their URLs serve the same
pixels and clips, follow-up actions accept their image ids, an extension accepts a video id, a seed
an image id, and a task the last process left running finishes.

What is kept is what serving and acting need: a task's type, request, plan, status and final reply,
an image's recipe and a video's footage (render.py and clips.py draw the same pixels from them again,
so no picture or clip is stored). A task is written when it is accepted and again when it ends, in a
transaction with its image or video; WAL, so a ``kill -9`` loses nothing that was written, and another
process on the same file reads it. The newest ``archive_tasks`` tasks are kept, with their images and
videos; older ones go (an image whose source went can no longer be drawn, like an expired CDN link).
The archive is a leaf: its lock is held only around its own statements, from the event loop and from
render threads alike.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from ..core.actions import Kind
from .records import Footage, Plan, Recipe, SimImage, SimTask, SimVideo

log = logging.getLogger("mj_mcp.sim")
T = TypeVar("T")

SCHEMA = 2
_TABLES = """
CREATE TABLE IF NOT EXISTS tasks (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, trace_id TEXT,
    created_at REAL NOT NULL, application_id TEXT, body TEXT NOT NULL, type TEXT NOT NULL DEFAULT 'imagine');
CREATE INDEX IF NOT EXISTS tasks_by_trace ON tasks (trace_id);
CREATE INDEX IF NOT EXISTS tasks_by_time ON tasks (created_at);
CREATE TABLE IF NOT EXISTS images (image_id TEXT PRIMARY KEY, task_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS images_by_task ON images (task_id);
CREATE TABLE IF NOT EXISTS videos (video_id TEXT PRIMARY KEY, task_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS videos_by_task ON videos (task_id);
"""
# Schema 1 (images only) had no task type: its tasks were all imagine tasks.
_FROM_1 = "ALTER TABLE tasks ADD COLUMN type TEXT NOT NULL DEFAULT 'imagine'"
_MASK_IN_REQUEST = 2048  # characters of a request's mask kept as sent (a URL); longer ones are in the recipe
# A task's fields that are not kept: the live objects of this process, and what is rebuilt on load.
_LIVE = {"token", "plan", "recipe", "footage", "kind", "events", "aborted", "changed", "job"}


class Archive:
    """Tasks and images by id, on disk; every method is safe from any thread."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA:
                raise sqlite3.DatabaseError(f"written by a newer mj-mcp (schema {version})")
            if version == 1:
                self._db.execute(_FROM_1)
            self._db.executescript(_TABLES)
            self._db.execute(f"PRAGMA user_version={SCHEMA}")
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, path: str, keep: int) -> Archive | None:
        """The archive at ``path``, or None (logged) when it cannot be opened: the simulator then
        serves from memory, and what earlier processes served is unavailable."""
        try:
            return cls(Path(path).expanduser(), keep)
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "the simulator's archive %s cannot be opened (%s): images simulated before this start "
                "are unavailable; move the file away to start a new one",
                path,
                exc,
            )
            return None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def clear(self) -> None:
        self._write(["DELETE FROM images", "DELETE FROM videos", "DELETE FROM tasks"], [(), (), ()])

    # --- writing
    def save(self, task: SimTask, image: SimImage | None = None, video: SimVideo | None = None) -> None:
        """Keep the task as it is now (and the image or video it made); a new one makes room (the
        oldest beyond ``keep`` go)."""
        statements = [
            "INSERT INTO tasks (id, trace_id, created_at, application_id, body, type) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body"
        ]
        params: list[tuple[Any, ...]] = [
            (task.id, task.trace_id, task.created_at, task.application_id, json.dumps(_task_body(task)), task.type)
        ]
        if image is not None:
            statements.append("INSERT OR REPLACE INTO images (image_id, task_id, body) VALUES (?, ?, ?)")
            params.append((image.image_id, image.task_id, json.dumps(_image_body(image))))
        if video is not None:
            statements.append("INSERT OR REPLACE INTO videos (video_id, task_id, body) VALUES (?, ?, ?)")
            params.append((video.video_id, video.task_id, json.dumps(_video_body(video))))
        self._write(statements, params)
        if not task.done:
            self._evict()

    def _write(self, statements: list[str], params: list[tuple[Any, ...]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, args in zip(statements, params, strict=True):
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                # A full or read-only disk costs the archive (tomorrow's restart), never today's task.
                self._rollback()
                log.warning("the simulator's archive %s: write failed (%s)", self.path, exc)

    def _evict(self) -> None:
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT seq FROM tasks ORDER BY seq DESC LIMIT 1 OFFSET ?", (self.keep,)
                ).fetchone()
                if row is None:
                    return
                self._db.execute("BEGIN IMMEDIATE")
                for table in ("images", "videos"):
                    self._db.execute(f"DELETE FROM {table} WHERE task_id IN (SELECT id FROM tasks WHERE seq <= ?)", row)
                self._db.execute("DELETE FROM tasks WHERE seq <= ?", row)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                log.warning("the simulator's archive %s: eviction failed (%s)", self.path, exc)

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # closed meanwhile (the simulator stopping): nothing is left open

    # --- reading
    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                log.warning("the simulator's archive %s: read failed (%s)", self.path, exc)
                return []

    def image(self, image_id: str) -> SimImage | None:
        rows = self._rows("SELECT body FROM images WHERE image_id = ?", (image_id,))
        return self._parsed(_image_from, rows, image_id)

    def video(self, video_id: str) -> SimVideo | None:
        rows = self._rows("SELECT body FROM videos WHERE video_id = ?", (video_id,))
        return self._parsed(_video_from, rows, video_id)

    def task(self, task_id: str | None = None, *, trace_id: str | None = None) -> SimTask | None:
        """A task by id or trace id, as it was last saved (its live fields new: no token, no job)."""
        if task_id:
            rows = self._rows("SELECT body FROM tasks WHERE id = ?", (task_id,))
        else:
            rows = self._rows("SELECT body FROM tasks WHERE trace_id = ? ORDER BY seq DESC LIMIT 1", (trace_id,))
        return self._parsed(_task_from, rows, task_id or trace_id)

    def _parsed(self, parse: Callable[[dict[str, Any]], T], rows: list[tuple[Any, ...]], key: object) -> T | None:
        """The record of the first row; None, logged, for one that no longer reads (edited by hand,
        or written by another version): it is as gone as an evicted one."""
        if not rows:
            return None
        try:
            return parse(json.loads(rows[0][0]))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("the simulator's archive %s: unreadable record %.80s (%s)", self.path, key, type(exc).__name__)
            return None

    def summaries(
        self, *, since: float | None = None, until: float | None = None, application_id: str | None = None
    ) -> list[tuple[str, str, float, str]]:
        """(id, trace id, created at, type) of the tasks created in that window, for that application."""
        sql = "SELECT id, trace_id, created_at, type FROM tasks WHERE created_at >= ? AND created_at <= ?"
        args: list[Any] = [since if since is not None else float("-inf"), until if until is not None else float("inf")]
        if application_id:
            sql += " AND application_id = ?"
            args.append(application_id)
        return [(r[0], r[1], r[2], r[3]) for r in self._rows(sql, tuple(args))]

    def last_image_id(self) -> int:
        """The largest image id kept (0 if none): new ids go on from there, never repeating one."""
        rows = self._rows("SELECT max(CAST(image_id AS INTEGER)) FROM images", ())
        return int(rows[0][0] or 0) if rows else 0

    def last_video_id(self) -> int:
        """The largest video id kept (0 if none)."""
        rows = self._rows("SELECT max(CAST(video_id AS INTEGER)) FROM videos", ())
        return int(rows[0][0] or 0) if rows else 0


# --- records as JSON: tuples come back as tuples (sizes are compared with Pillow's), bytes as base64


def _recipe_body(recipe: Recipe) -> dict[str, Any]:
    body = {f.name: getattr(recipe, f.name) for f in fields(recipe) if f.name != "mask"}
    mask = recipe.mask
    if isinstance(mask, bytes):
        body["mask_b64"] = base64.b64encode(mask).decode()
    elif isinstance(mask, str):
        body["mask_url"] = mask
    return body


def _recipe_from(body: dict[str, Any]) -> Recipe:
    mask: bytes | str | None = body.pop("mask_url", None)
    if "mask_b64" in body:
        mask = base64.b64decode(body.pop("mask_b64"))
    return Recipe(**{**body, "size": tuple(body["size"]), "urls": tuple(body["urls"]), "mask": mask})


def _image_body(image: SimImage) -> dict[str, Any]:
    body = {f.name: getattr(image, f.name) for f in fields(image) if f.name != "recipe"}
    return {**body, "kind": image.kind.value, "recipe": _recipe_body(image.recipe)}


def _image_from(body: dict[str, Any]) -> SimImage:
    sizes = {k: tuple(body[k]) for k in ("raw", "thumb", "cell")}
    return SimImage(
        **{
            **body,
            **sizes,
            "kind": Kind(body["kind"]),
            "actions": tuple(body["actions"]),
            "urls": tuple(body["urls"]),
            "recipe": _recipe_from(body["recipe"]),
        }
    )


def _footage_body(footage: Footage) -> dict[str, Any]:
    return asdict(footage)


def _footage_from(body: dict[str, Any]) -> Footage:
    return Footage(**{**body, "size": tuple(body["size"])})


def _video_body(video: SimVideo) -> dict[str, Any]:
    return {**asdict(video), "footage": _footage_body(video.footage)}


def _video_from(body: dict[str, Any]) -> SimVideo:
    return SimVideo(**{**body, "footage": _footage_from(body["footage"])})


def _task_body(task: SimTask) -> dict[str, Any]:
    body = {f.name: getattr(task, f.name) for f in fields(task) if f.name not in _LIVE}
    mask = task.request.get("mask")
    if isinstance(mask, str) and len(mask) > _MASK_IN_REQUEST:
        # The recipe keeps the decoded mask: the request echoes only its length, not a second copy.
        body["request"] = {**task.request, "mask": f"<{len(mask)} characters>"}
    body["plan"] = asdict(task.plan)
    body["kind"] = task.kind.value if task.kind is not None else None
    body["recipe"] = _recipe_body(task.recipe) if task.recipe is not None else None
    body["footage"] = _footage_body(task.footage) if task.footage is not None else None
    return body


def _task_from(body: dict[str, Any]) -> SimTask:
    plan, kind, recipe, result = body.pop("plan"), body.pop("kind"), body.pop("recipe"), body.pop("result")
    footage = body.pop("footage", None)
    for key in ("raw", "thumb", "cell", "urls"):
        if key in result:
            result[key] = tuple(result[key])
    task = SimTask(
        **body,
        token="",
        plan=Plan(**plan),
        result=result,
        kind=Kind(kind) if kind is not None else None,
        recipe=_recipe_from(recipe) if recipe is not None else None,
        footage=_footage_from(footage) if footage is not None else None,
    )
    if task.final is not None:
        task.events = [task.final]
    return task
