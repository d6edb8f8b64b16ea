"""The simulator's memory and its test-facing handle: tasks, images, videos, the request and callback
logs, queued faults, ids, the render cache and the clips drawn through it, the foreign inputs
(inputs.py) and, when embedded with one, the archive on disk (archive.py), behind the tasks, images and
videos in memory.

Requests are served on the simulator's event loop thread while tests read and reset the state from
their own thread, so every mutation holds one re-entrant lock, and anything that touches asyncio
objects is handed to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import cdn
from . import faults as faults_mod
from .archive import Archive
from .clips import Clips
from .inputs import Inputs
from .knobs import SimConfig
from .records import SimImage, SimTask, SimVideo
from .render import Renderer

REDACTED = "Bearer ***"
MAX_LOG = 10_000  # request and callback log entries kept (oldest dropped): a long embedded run stays bounded
# Ended tasks (and their images) kept in memory beside an archive; older ones are read back from it.
ENDED_IN_MEMORY = 64


class Ids:
    """Task and trace ids (UUIDv4 from a seeded RNG), 19-digit, strictly increasing image ids, and
    16-digit, strictly increasing video ids (upstream's examples have that many)."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
        self._snowflake = 1_250_000_000_000_000_000 + self._rng.randrange(10**15)
        self._video = 1_750_000_000_000_000 + self._rng.randrange(10**12)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def image_id(self) -> str:
        self._snowflake += self._rng.randrange(1 << 12, 1 << 22)
        return str(self._snowflake)

    def video_id(self) -> str:
        self._video += self._rng.randrange(1 << 8, 1 << 16)
        return str(self._video)

    def object_id(self) -> str:
        return f"{self._rng.getrandbits(96):024x}"

    def go_past(self, image_id: int, video_id: int = 0) -> None:
        """New image (and video) ids from here on are larger than those an archive already holds.
        A random leap beyond them: two processes starting on one archive must not count from one place."""
        self._snowflake = max(self._snowflake, image_id + self._rng.randrange(1 << 40))
        self._video = max(self._video, video_id + self._rng.randrange(1 << 24))


@dataclass
class Injection:
    path: str  # "*" for every /midjourney/* path
    fault: faults_mod.Fault
    remaining: int


class SimState:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.lock = threading.RLock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.config = config or SimConfig()
        self.generation = 0  # bumped by reset: requests that arrived before it start nothing after it
        # Set to a list to record (task_id, progress, time.perf_counter()) as each ndjson line is written
        # (the progress-latency benchmark); None, the default, costs one attribute test per line.
        self.line_stamps: list[tuple[str, Any, float]] | None = None
        self.inputs = Inputs(lambda: self.config, lambda: self.loop)
        self.renderer = Renderer(
            self.image,
            lambda url: cdn.own_picture(url, self.image),
            self.inputs.image,
            budget_mb=self.config.render_cache_mb,
        )
        self.clips = Clips(self.renderer, self.video)
        self.archive: Archive | None = None
        self._open_archive()
        self._clear()

    def _open_archive(self) -> None:
        if self.archive is not None:
            self.archive.close()
        cfg = self.config
        self.archive = Archive.open(cfg.archive, cfg.archive_tasks) if cfg.archive else None

    def _clear(self) -> None:
        self.task_map: dict[str, SimTask] = {}
        self.images: dict[str, SimImage] = {}
        self.videos: dict[str, SimVideo] = {}
        self.log: list[dict[str, Any]] = []
        self.callback_log: list[dict[str, Any]] = []
        self.injected: list[Injection] = []
        self.ids = Ids(self.config.seed)
        if self.archive is not None:
            self.ids.go_past(self.archive.last_image_id(), self.archive.last_video_id())
        self.rng = random.Random(self.config.seed if self.config.seed is not None else os.urandom(8))
        self.counter = 0  # render keys, the random error shape
        self.background: set[asyncio.Task[None]] = set()  # callback deliveries
        self.renderer.clear()
        self.renderer.configure(self.config.render_cache_mb)
        self.inputs.clear()

    # --- test-facing API
    def reset(self, config: SimConfig | None = None) -> None:
        """Forget every task, image (the archive's too), log entry and queued fault; stop running jobs;
        maybe swap config."""
        with self.lock:
            self._cancel_all()
            self.generation += 1
            if config is not None:
                self.config = config
                self._open_archive()
            if self.archive is not None:
                self.archive.clear()
            self._clear()

    def configure(self, **knobs: Any) -> SimConfig:
        """Change knobs at runtime (validated; unknown names raise)."""
        with self.lock:
            self.config = SimConfig.model_validate({**self.config.model_dump(), **knobs})
            self.renderer.configure(self.config.render_cache_mb)
            return self.config

    def inject(self, path: str, fault: str, times: int = 1, **params: Any) -> None:
        """Queue ``fault`` for the next ``times`` requests on ``path`` (``"*"``: any API path).

        ``fault`` may carry its own parameters (``"429;retry_after=2"``); ``params`` add to them.
        """
        specs = faults_mod.parse(fault)
        with self.lock:
            for f in specs:
                merged = faults_mod.Fault(f.name, {**f.params, **{k: str(v) for k, v in params.items()}})
                self.injected.append(Injection(path, merged, max(1, int(times))))

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Logged requests (method, path, query, headers with authorization redacted, body, time)."""
        with self.lock:
            return [dict(r) for r in self.log if path is None or r["path"] == path]

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task's full record by task id (as ``GET /__fake/tasks`` shows them)."""
        from .retrieval import record  # retrieval imports state

        with self.lock:
            return {t.id: record(self, t, internal=True) for t in self.task_map.values()}

    @property
    def callbacks(self) -> list[dict[str, Any]]:
        """Every callback delivery attempt: task_id, url, body, status, error, attempt, time."""
        with self.lock:
            return [dict(c) for c in self.callback_log]

    # --- used by request handling and the task timeline
    def image(self, image_id: str) -> SimImage | None:
        # Lock-free on purpose: render threads call this while holding the renderer's lock, and
        # reset() holds this state's lock while clearing the renderer; a dict read is atomic anyway,
        # and the archive's lock is a leaf.
        image, archive = self.images.get(image_id), self.archive
        if image is None and archive is not None:
            image = archive.image(image_id)
        return image

    def video(self, video_id: str) -> SimVideo | None:
        # Lock-free for the same reasons as image().
        video, archive = self.videos.get(video_id), self.archive
        if video is None and archive is not None:
            video = archive.video(video_id)
        return video

    def keep(self, task: SimTask, image: SimImage | None = None, video: SimVideo | None = None) -> None:
        """Write a task accepted or ended (with the image or video it made) to the archive, if there is
        one; then forget all but the last ended tasks in memory: the archive has them."""
        if self.archive is None:
            return
        self.archive.save(task, image, video)
        if task.done:
            with self.lock:
                ended = [t for t in self.task_map.values() if t.done]
                for old in ended[:-ENDED_IN_MEMORY]:
                    del self.task_map[old.id]
                    if old.image_id is not None:
                        self.images.pop(old.image_id, None)
                    if old.video_id is not None:
                        self.videos.pop(old.video_id, None)

    def url_secret(self) -> str:
        """The random part of a new image's or task's URLs: none standalone, 128 bits embedded."""
        return secrets.token_hex(16) if self.config.embedded else ""

    def next_key(self, prefix: str) -> str:
        with self.lock:
            self.counter += 1
            return f"{prefix}:{self.counter}"

    def take_injected(self, path: str) -> list[faults_mod.Fault]:
        with self.lock:
            out = []
            for inj in self.injected:
                if inj.remaining > 0 and inj.path in (path, "*"):
                    inj.remaining -= 1
                    out.append(inj.fault)
            self.injected = [i for i in self.injected if i.remaining > 0]
            return out

    def log_request(self, method: str, path: str, query: str, headers: Mapping[str, str], body: Any) -> None:
        if self.config.embedded:
            return  # nobody can read it (no control API), and it would hold every prompt and mask
        entry = {
            "method": method,
            "path": path,
            "query": query,
            "headers": {k: (REDACTED if k.lower() == "authorization" else v) for k, v in headers.items()},
            "body": body,
            "time": time.time(),
        }
        with self.lock:
            self.log.append(entry)
            if len(self.log) > MAX_LOG:
                del self.log[: len(self.log) - MAX_LOG]

    def log_callback(self, entry: dict[str, Any]) -> None:
        if self.config.embedded:
            return
        with self.lock:
            self.callback_log.append(entry)
            if len(self.callback_log) > MAX_LOG:
                del self.callback_log[: len(self.callback_log) - MAX_LOG]

    def bind_loop(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()

    def _cancel_all(self) -> None:
        """Stop every job and delivery, and wake whoever waits on a task so they give up."""
        tasks = list(self.task_map.values())
        jobs = [t.job for t in tasks if t.job is not None] + list(self.background)
        for t in tasks:
            t.aborted = True
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        def cancel() -> None:
            for j in jobs:
                j.cancel()
            for t in tasks:
                if t.changed is not None:
                    t.changed.set()

        try:
            if _in_loop(loop):
                cancel()
            else:
                loop.call_soon_threadsafe(cancel)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def shutdown(self) -> None:
        with self.lock:
            self._cancel_all()
            if self.archive is not None:
                self.archive.close()
                self.archive = None


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
