"""The on-disk image cache: downloaded images outlive their CDN URLs (which expire, ``ex=``).

One file per image, ``<key>.<ext>``, the extension recording the MIME type. Writes are atomic
(a temporary file renamed into place), so a crash never leaves half an image under a real key.
A read touches the file's mtime, and a write evicts the least recently used files until the
directory is under its size cap. Blocking file work runs in a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

import anyio

log = logging.getLogger("mj_mcp.cache")

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
MIME_OF = {ext: mime for mime, ext in EXTENSIONS.items()}
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def key_for(namespace: str, image_id: str | None, url: str | None) -> str:
    """A file-safe key: the image_id within its upstream (two simulators may reuse an id), else a
    hash of the URL."""
    ns = hashlib.sha256(namespace.encode()).hexdigest()[:8]
    if image_id and _SAFE_KEY.match(image_id) and len(image_id) <= 64:
        return f"{image_id}-{ns}"
    return "u" + hashlib.sha256((url or "").encode()).hexdigest()[:40]


class ImageCache:
    """Bytes by key, with a size cap and least-recently-used eviction; ``directory=None`` keeps nothing."""

    def __init__(self, directory: Path | None, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def _find(self, key: str) -> Path | None:
        assert self.directory is not None
        for ext in MIME_OF:
            path = self.directory / f"{key}.{ext}"
            if path.is_file():
                return path
        return None

    def get_sync(self, key: str) -> tuple[bytes, str] | None:
        if self.directory is None:
            return None
        path = self._find(key)
        if path is None:
            return None
        try:
            data = path.read_bytes()
            os.utime(path)  # mtime is the last use: relatime mounts make atime unreliable
        except OSError:
            return None
        return data, MIME_OF[path.suffix[1:]]

    def put_sync(self, key: str, data: bytes, mime: str) -> None:
        if self.directory is None or mime not in EXTENSIONS or len(data) > self.max_bytes:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.directory / f"{key}.{EXTENSIONS[mime]}")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.evict_sync()
        except OSError as exc:  # a full or read-only disk costs the cache, never the result
            log.warning("image cache write failed: %s", exc)

    def evict_sync(self) -> None:
        """Delete the least recently used images until the total fits the cap."""
        assert self.directory is not None
        entries = []
        for path in self.directory.iterdir():
            if path.suffix[1:] in MIME_OF and not path.name.startswith("."):
                try:
                    st = path.stat()
                except OSError:
                    continue
                entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    async def get(self, key: str) -> tuple[bytes, str] | None:
        return await anyio.to_thread.run_sync(self.get_sync, key)

    async def put(self, key: str, data: bytes, mime: str) -> None:
        await anyio.to_thread.run_sync(self.put_sync, key, data, mime)
