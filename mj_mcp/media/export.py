"""Writing an image into the one directory the user allowed (``MJ_MCP_EXPORT_DIR``).

The path comes from the model, or from a prompt injected into it, and the directory may hold the
user's own files, so every write is held to these rules:

- The export directory is a folder for images: by default ``default_export_dir()`` (the user's
  pictures folder / mj-mcp), never the working directory. A configured one that is a filesystem
  root, the home directory or a folder containing it is refused (``validate_export_dir``).
- The path names a file inside it: ``..`` that leaves it, an absolute path elsewhere, ``~``, NUL,
  an overlong or too deep path are refused, each with where exports go and how to change that.
- The extension is the image's type: ``.png`` for a PNG (none: it is added); ``.docx``, ``.py`` or
  ``.jpg`` for PNG bytes are refused, naming the one that works. A texts record is ``.txt``; a video's clip
  is ``.mp4``, the same way.
- Only an image this server wrote there, unchanged since, is ever replaced, and only with
  ``overwrite``: a manifest in the export directory records each export's digest. Anything else at
  the path is kept.
- No check-then-write race: directories are opened one by one from the export directory without
  following symbolic links (``O_NOFOLLOW`` directory descriptors), the image is written to a
  temporary file in the final directory, then linked into place (a new file: fails if anything
  appeared there meanwhile) or renamed over the old export (which replaces the directory entry
  itself: a symlink planted there is replaced, never written through).

Where the platform has no directory descriptors (Windows), the same steps run on paths, checking
each component with ``lstat``; a rename there still never writes through a link.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
import threading
from pathlib import Path, PurePath

from ..core.operations import EXPORT_IMAGE
from ..errors import ExportRefused, quote
from ..records import TEXT_MIME
from ..settings import default_export_dir, validate_export_dir

ENV = "MJ_MCP_EXPORT_DIR"
MANIFEST = ".mj-mcp-exports.json"
MAX_PATH_CHARS = 1024
MAX_DEPTH = 16
MAX_NAME_BYTES = 255
MAX_MANIFEST_ENTRIES = 10_000
MAX_MANIFEST_BYTES = 4 << 20
MAX_IMAGE_BYTES = 256 << 20  # larger than any image we fetch (64 MB): a bigger file is not ours
# By the content's MIME type, the extensions its file may have (the first is added when there is none);
# a texts record (describe's prompts, a rewritten prompt) is written as text.
ALLOWED = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/webp": (".webp",),
    "image/gif": (".gif",),
    TEXT_MIME: (".txt",),
    "video/mp4": (".mp4",),
}

_LOCK = threading.Lock()  # one export at a time in this process: the manifest is read, then rewritten


def save(export_dir: Path | None, path: str, data: bytes, mime: str, *, overwrite: bool) -> Path:
    """Write ``data`` to ``path`` inside the export directory (``None``: the default) and return the
    file written. Blocking: run it in a worker thread. Raises ``ExportRefused`` saying what happened,
    where exports go and how to change that; nothing is written then."""
    configured = export_dir if export_dir is not None else default_export_dir()
    try:
        root = validate_export_dir(configured)
    except ValueError as exc:
        raise ExportRefused(str(exc)) from None
    parts = _parts(path, root, Path(configured).expanduser())
    name = parts[-1]
    suffix = PurePath(name).suffix
    if not suffix:
        name += ALLOWED[mime][0]
    elif suffix.lower() not in ALLOWED.get(mime, ()):
        subtype = mime.split("/")[1].upper()
        what = "clip" if mime.startswith("video/") else "image"
        kind = "text" if mime == TEXT_MIME else f"a {subtype} {what}"
        raise _refused(
            f"{quote(name)} does not end in {' or '.join(ALLOWED[mime])}, and it is {kind}: "
            f"only image, clip and text files are written",
            root,
            example=name + ALLOWED[mime][0],
        )
    rel = "/".join([*parts[:-1], name])
    with _LOCK:
        try:
            os.makedirs(root, exist_ok=True)
            top = _Dir.open_root(root)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise _refused(f"the export directory cannot be used ({why})", root) from None
        folder = top
        try:
            for i, part in enumerate(parts[:-1]):
                inner = _step(folder, part, "/".join(parts[: i + 1]), root)
                if folder is not top:
                    folder.close()
                folder = inner
            _write(folder, top, name, rel, data, overwrite=overwrite, root=root)
        finally:
            if folder is not top:
                folder.close()
            top.close()
    return root.joinpath(*parts[:-1], name)


def _refused(what: str, root: Path, example: str = "images/hero.png") -> ExportRefused:
    return ExportRefused(
        what, next_step=f"Exports go to {root} (set by {ENV}): give a file path inside it, e.g. {example}."
    )


def _parts(path: str, root: Path, configured: Path) -> list[str]:
    """The path's components inside the export directory, ``..`` folded in; refused when empty, odd or outside."""
    if not path.strip():
        raise _refused("the path is empty", root)
    if "\x00" in path:
        raise _refused(f"the path {quote(path)} contains a NUL character", root)
    if len(path) > MAX_PATH_CHARS:
        raise _refused(f"the path {quote(path)} is longer than {MAX_PATH_CHARS} characters", root)
    if path.startswith("~"):
        raise _refused(
            f"{quote(path)} starts with ~, which is not expanded: paths are inside the export directory", root
        )
    given = PurePath(path)
    if given.is_absolute():
        base = next((b for b in (root, configured) if given.is_relative_to(b)), None)
        if base is None:
            raise _refused(f"{quote(path)} is outside the export directory", root)
        given = given.relative_to(base)
    if path.endswith(("/", os.sep)):
        raise _refused(f"{quote(path)} names a folder, not a file", root)
    parts: list[str] = []
    for part in given.parts:
        if part == "..":
            if not parts:
                raise _refused(f"{quote(path)} is outside the export directory", root)
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    if not parts:
        raise _refused(f"{quote(path)} is the export directory itself, not a file in it", root)
    if len(parts) > MAX_DEPTH:
        raise _refused(f"{quote(path)} is more than {MAX_DEPTH} folders deep", root)
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts):
        raise _refused(f"a name in {quote(path)} is longer than {MAX_NAME_BYTES} bytes", root)
    return parts


def _step(folder: _Dir, part: str, shown: str, root: Path) -> _Dir:
    """The subfolder ``part`` (created if missing), refused when it is a link or not a folder."""
    try:
        return folder.child(part)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            st = folder.lstat(part)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise _refused(
                    f"{quote(shown)} is a symbolic link, and {EXPORT_IMAGE} does not follow links "
                    f"(one could lead outside the export directory)",
                    root,
                ) from None
            raise _refused(f"{quote(shown)} is not a folder", root) from None
        raise _refused(f"cannot open the folder {quote(shown)} ({exc.strerror or type(exc).__name__})", root) from None


def _write(folder: _Dir, top: _Dir, name: str, rel: str, data: bytes, *, overwrite: bool, root: Path) -> None:
    st = folder.lstat(name)
    manifest = _read_manifest(top)
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise _refused(f"{quote(rel)} is a symbolic link; {EXPORT_IMAGE} never writes through links", root)
        if not stat.S_ISREG(st.st_mode):
            raise _refused(f"{quote(rel)} exists and is not a file", root)
        if not overwrite:
            raise _refused(
                f"{quote(rel)} exists; it is replaced only with overwrite=true, and only when it is "
                f"an image {EXPORT_IMAGE} wrote",
                root,
                example=_other(name),
            )
        existing = folder.read(name, MAX_IMAGE_BYTES)
        if existing is None or manifest.get(rel) != hashlib.sha256(existing).hexdigest():
            raise _refused(
                f"{quote(rel)} was not written by {EXPORT_IMAGE} (or was changed since), so it is never replaced",
                root,
                example=_other(name),
            )
    try:
        tmp = folder.write_temp(data)
    except OSError as exc:
        raise _refused(f"cannot write in the export directory ({exc.strerror or type(exc).__name__})", root) from None
    try:
        if st is None:
            folder.link_new(tmp, name)  # fails if anything appeared at the name since the check
        else:
            folder.replace(tmp, name)
    except FileExistsError:
        raise _refused(f"{quote(rel)} appeared while exporting; it is kept", root, example=_other(name)) from None
    except OSError as exc:
        raise _refused(f"cannot write {quote(rel)} ({exc.strerror or type(exc).__name__})", root) from None
    finally:
        folder.unlink(tmp)
    manifest.pop(rel, None)
    manifest[rel] = hashlib.sha256(data).hexdigest()  # newest last: the oldest go first past the cap
    while len(manifest) > MAX_MANIFEST_ENTRIES:
        manifest.pop(next(iter(manifest)))
    try:
        top.write_atomic(MANIFEST, json.dumps({"version": 1, "files": manifest}).encode())
    except OSError:
        pass  # the image is written; without its record it is only never replaced, the safe side


def _other(name: str) -> str:
    p = PurePath(name)
    return f"{p.stem}-2{p.suffix}"


def _read_manifest(top: _Dir) -> dict[str, str]:
    raw = top.read(MANIFEST, MAX_MANIFEST_BYTES)
    try:
        files = json.loads(raw)["files"] if raw else {}
    except (ValueError, KeyError, TypeError):
        files = {}
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


# rename: replace too.
_NOFOLLOW_FDS = (
    hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and {os.open, os.mkdir, os.stat, os.link, os.rename, os.unlink} <= os.supports_dir_fd
)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class _Dir:
    """A directory held open: every name is looked up inside it, never through a path string that
    could be swapped between a check and a write."""

    def __init__(self, fd: int | None, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def open_root(cls, root: Path) -> _Dir:
        if not _NOFOLLOW_FDS:
            return cls(None, root)
        return cls(os.open(root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC), root)  # the user's own choice: followed

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def _at(self) -> dict[str, int]:
        return {"dir_fd": self.fd} if self.fd is not None else {}

    def _name(self, name: str) -> str | Path:
        return name if self.fd is not None else self.path / name

    def child(self, name: str) -> _Dir:
        if self.fd is None:
            st = self.lstat(name)
            if st is None:
                os.mkdir(self.path / name, 0o755)
            elif stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, "not a folder")
            return _Dir(None, self.path / name)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
        try:
            return _Dir(os.open(name, flags, dir_fd=self.fd), self.path / name)
        except FileNotFoundError:
            try:
                os.mkdir(name, 0o755, dir_fd=self.fd)
            except FileExistsError:
                pass  # made meanwhile: opened below like any other, links refused
            return _Dir(os.open(name, flags, dir_fd=self.fd), self.path / name)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(self._name(name), follow_symlinks=False, **self._at())
        except FileNotFoundError:
            return None

    def read(self, name: str, limit: int) -> bytes | None:
        """A regular file's bytes (not through a link), or None when absent, odd or over ``limit``."""
        # O_NONBLOCK: opening a FIFO planted at the name must not wait for a writer.
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC
        try:
            fd = os.open(self._name(name), flags, **self._at())
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
                return None
            return f.read(limit + 1)[:limit]

    def write_temp(self, data: bytes) -> str:
        name = f".mj-export-{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
        fd = os.open(self._name(name), flags, 0o644, **self._at())
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            self.unlink(name)
            raise
        return name

    def link_new(self, tmp: str, name: str) -> None:
        """``tmp`` under ``name``, only if nothing is there (a hard link never replaces an entry)."""
        try:
            if self.fd is not None:
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            else:
                os.link(self.path / tmp, self.path / name)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links here (FAT, some network mounts): create the name exclusively instead.
            data = self.read(tmp, MAX_IMAGE_BYTES) or b""
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
            with os.fdopen(os.open(self._name(name), flags, 0o644, **self._at()), "wb") as f:
                f.write(data)

    def replace(self, tmp: str, name: str) -> None:
        if self.fd is not None:
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        else:
            os.replace(self.path / tmp, self.path / name)

    def write_atomic(self, name: str, data: bytes) -> None:
        tmp = self.write_temp(data)
        try:
            self.replace(tmp, name)
        finally:
            self.unlink(tmp)

    def unlink(self, name: str) -> None:
        try:
            os.unlink(self._name(name), **self._at())
        except FileNotFoundError:
            pass
