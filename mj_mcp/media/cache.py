"""The on-disk image cache: downloaded images (and a video's clips) outlive their CDN URLs (which
expire, ``ex=``).

One file per image or clip, ``<key>.<ext>``, the extension recording the MIME type. Writes are atomic
(a temporary file renamed into place), so a crash never leaves half an image under a real key.
A read touches the file's mtime, and a write evicts the least recently used files until the
directory is under its size cap. Blocking file work runs in a worker thread.

What the directory holds is known from memory: one pass over it (each file's size, age and trailer)
at the first write, then every write and read is counted in, and the pass is made again once it is
``RESCAN_S`` old (another replica on a shared volume writes and reads too). A pass at every write, as
before, read every file's trailer each time: quadratic in the cache's size, it was most of the
server's work when a few hundred results finished at once.

The image just written is never what a write evicts: a finished image the user paid for is kept even
when it alone is larger than the cap (a real 4x upscale is 20-30 MB), everything else going first and
a warning naming ``MJ_MCP_CACHE_MB`` logged. Refusing caps below the largest image instead would tie a
setting to upstream's sizes, which it does not document.

A disk is not a promise: a file can be truncated (a full disk, a killed copy), flipped, or replaced
by another program. So each file ends with a trailer recording the image's size, digest and key,
written with it (decoders ignore bytes after an image's end, so the file still opens as a picture),
and a read checks it: a file that does not match is deleted and reported as ``DamagedCopy``, and
the caller fetches the image again while its URL works.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import anyio

from ..errors import DamagedCopy

log = logging.getLogger("mj_mcp.cache")

# What is kept: pictures, and a video's clips.
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4"}
MIME_OF = {ext: mime for mime, ext in EXTENSIONS.items()}
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_MAGIC = b"\nmj-mcp-cache1 "
DROPPED_KEPT = 1024
# The thumbnails' part of the cap: 1/16 (500 MB: 31 MB, over a thousand 512 px thumbnails).
THUMBNAILS_SHARE = 16
STALE_PART_S = 3600.0  # a temporary file this old is no write in progress: its writer died
# How old what is known of the directory may get before it is looked at again (other replicas' files).
RESCAN_S = 60.0
TRAILER = len(_MAGIC) + 12 + 1 + 16 + 1 + 64 + 1  # "<size:012d> <key hash:16> <sha256:64>\n"


def _trailer(key: str, data: bytes) -> bytes:
    key_hash = hashlib.sha256(key.encode()).hexdigest()[:16]
    return _MAGIC + b"%012d %s %s\n" % (len(data), key_hash.encode(), hashlib.sha256(data).hexdigest().encode())


def _checked(key: str, stored: bytes) -> bytes:
    """The image in a cache file, after checking its trailer; raises ``DamagedCopy`` saying how."""
    if len(stored) < TRAILER or not stored[-TRAILER:].startswith(_MAGIC):
        raise DamagedCopy("replaced or cut short (no record of what was written)")
    body = memoryview(stored)[:-TRAILER]
    try:
        size_text, key_hash, digest = stored[-TRAILER + len(_MAGIC) : -1].split(b" ")
        size = int(size_text)
    except ValueError:
        raise DamagedCopy("corrupted (its record of what was written is garbled)") from None
    if size != len(body):
        raise DamagedCopy(f"truncated or grown ({len(body):,} bytes, {size:,} written)")
    if key_hash.decode() != hashlib.sha256(key.encode()).hexdigest()[:16]:
        raise DamagedCopy("replaced by another image's file")
    if hashlib.sha256(body).hexdigest().encode() != digest:
        raise DamagedCopy("corrupted (its bytes changed since they were written)")
    return bytes(body)


def key_for(namespace: str, image_id: str | None, url: str | None) -> str:
    """A file-safe key: the image_id within its upstream (two simulators may reuse an id), else a
    hash of the URL."""
    ns = hashlib.sha256(namespace.encode()).hexdigest()[:8]
    if image_id and _SAFE_KEY.match(image_id) and len(image_id) <= 64:
        return f"{image_id}-{ns}"
    return "u" + hashlib.sha256((url or "").encode()).hexdigest()[:40]


def image_caches(directory: Path | None, max_bytes: int) -> tuple[ImageCache, ImageCache]:
    """The cache of full images, and beside it (``thumbnails/``) the one of the thumbnails made of them,
    which takes a sixteenth of the cap: a thumbnail never pushes a full image out."""
    share = max_bytes // THUMBNAILS_SHARE
    thumbnails = directory / "thumbnails" if directory is not None else None
    return ImageCache(directory, max_bytes - share), ImageCache(thumbnails, share)


class ImageCache:
    """Bytes by key, with a size cap and least-recently-used eviction; ``directory=None`` keeps nothing."""

    def __init__(self, directory: Path | None, max_bytes: int, *, rescan_s: float = RESCAN_S) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._rescan_s = rescan_s
        # Keys whose file was found damaged and deleted, with how: until the image is cached again,
        # a miss on them says so (the caller's "gone" is then the same on every read).
        self._dropped: OrderedDict[str, str] = OrderedDict()
        # This cache's files by name -> size, the least recently used first, and their total: None
        # until the first pass over the directory (``_scan``). Worker threads share them, under the lock.
        self._files: OrderedDict[str, int] | None = None
        self._total = 0
        self._scanned = 0.0
        self._lock = threading.Lock()

    def _find(self, key: str, stored_as: str | None = None) -> Path | None:
        """The file of ``key``, whatever its type, or only of the type it is known to be stored as."""
        assert self.directory is not None
        for ext in (EXTENSIONS[stored_as],) if stored_as else MIME_OF:
            path = self.directory / f"{key}.{ext}"
            if path.is_file():
                return path
        return None

    def get_sync(self, key: str, stored_as: str | None = None) -> tuple[bytes, str] | None:
        """The image and its MIME type (looked for as ``stored_as`` only, when given); None when not
        cached. A file that fails its check is deleted and ``DamagedCopy`` raised, so the caller can say
        so if it cannot fetch it again."""
        if self.directory is None:
            return None
        path = self._find(key, stored_as)
        if path is None:
            if key in self._dropped:
                raise DamagedCopy(self._dropped[key])
            return None
        try:
            stored = path.read_bytes()
        except OSError:
            return None
        try:
            data = _checked(key, stored)
        except DamagedCopy as exc:
            log.warning("dropped the cached image %s: %s", path.name, exc.message)
            path.unlink(missing_ok=True)
            self._forget(path.name)
            self._dropped[key] = exc.message
            while len(self._dropped) > DROPPED_KEPT:
                self._dropped.popitem(last=False)
            raise
        try:
            os.utime(path)  # mtime is the last use: relatime mounts make atime unreliable
        except OSError:
            pass
        with self._lock:
            if self._files is not None and path.name in self._files:
                self._files.move_to_end(path.name)
        return data, MIME_OF[path.suffix[1:]]

    def put_sync(self, key: str, data: bytes, mime: str) -> None:
        if self.directory is None or mime not in EXTENSIONS:
            return
        size = len(data) + TRAILER
        if size > self.max_bytes:
            log.warning(
                "image %s is %.1f MB, more than the cache's cap (MJ_MCP_CACHE_MB, %.1f MB): kept anyway, "
                "every other cached image evicted; raise MJ_MCP_CACHE_MB to keep more than this one",
                key,
                size / (1 << 20),
                self.max_bytes / (1 << 20),
            )
        try:
            try:
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".part-")
            # Made at the first write, or again if it was deleted since (a mkdir at every write cost
            # more than the write: an exception and a stat each time).
            except FileNotFoundError:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".part-")
            path = self.directory / f"{key}.{EXTENSIONS[mime]}"
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.write(_trailer(key, data))
                os.replace(tmp, path)
                self._dropped.pop(key, None)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._added(path, size)
        except OSError as exc:  # a full or read-only disk costs the cache, never the result
            log.warning("image cache write failed: %s", exc)

    def _added(self, path: Path, size: int) -> None:
        """Count a file just written in, then evict down to the cap (never that file)."""
        with self._lock:
            if self._files is None or time.monotonic() - self._scanned >= self._rescan_s:
                files = self._scan()
            else:
                files = self._files
                self._total += size - files.pop(path.name, 0)
            files[path.name] = size
            self._evict(keep=path.name)

    def _forget(self, name: str) -> None:
        with self._lock:
            if self._files is not None:
                self._total -= self._files.pop(name, 0)

    def _scan(self) -> OrderedDict[str, int]:
        """One pass over the directory, under the lock; what it holds. Only files this cache wrote count (they end
        with its trailer): a cache directory set to a folder of the user's own pictures must never lose
        one of them."""
        assert self.directory is not None
        entries = []
        stale = time.time() - STALE_PART_S
        for path in self.directory.iterdir():
            if path.name.startswith(".part-"):  # a write a killed process left (any replica's, on a shared volume)
                try:
                    if path.stat().st_mtime < stale:
                        path.unlink(missing_ok=True)
                except OSError:
                    pass
                continue
            if path.suffix[1:] in MIME_OF and not path.name.startswith("."):
                try:
                    st = path.stat()
                    with path.open("rb") as f:
                        f.seek(max(st.st_size - TRAILER, 0))
                        if not f.read(TRAILER).startswith(_MAGIC):
                            continue
                except OSError:
                    continue
                entries.append((st.st_mtime, path.name, st.st_size))
        self._files = OrderedDict((name, size) for _, name, size in sorted(entries))
        self._total = sum(self._files.values())
        self._scanned = time.monotonic()
        return self._files

    def _evict(self, keep: str | None) -> None:
        """Delete the least recently used files, never ``keep``, until the total fits the cap; under the lock."""
        assert self.directory is not None and self._files is not None
        for name in list(self._files):
            if self._total <= self.max_bytes:
                break
            if name == keep:
                continue
            (self.directory / name).unlink(missing_ok=True)
            self._total -= self._files.pop(name)

    def holds_sync(self, key: str) -> bool:
        """Whether a file for ``key`` is there (not read, not checked: ``get`` checks)."""
        return self.directory is not None and self._find(key) is not None

    async def holds(self, key: str) -> bool:
        return self.directory is not None and await anyio.to_thread.run_sync(self.holds_sync, key)

    async def get(self, key: str) -> tuple[bytes, str] | None:
        return await anyio.to_thread.run_sync(self.get_sync, key)

    async def put(self, key: str, data: bytes, mime: str) -> None:
        await anyio.to_thread.run_sync(self.put_sync, key, data, mime)
