"""Writing an image into the one directory the user allowed (``MJ_MCP_EXPORT_DIR``).

The path comes from the model, so it is untrusted: it is resolved (following symlinks) and must
stay inside the export directory; ``..`` escapes, absolute paths elsewhere and symlinks pointing
out are refused. An existing file is kept unless the caller says ``overwrite``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ExportRefused
from .cache import EXTENSIONS


def target(export_dir: Path, path: str, mime: str) -> Path:
    """The absolute file to write, checked to lie inside ``export_dir``; the MIME's extension is
    added when the path has none."""
    root = export_dir.expanduser().resolve()
    if not path.strip() or "\x00" in path:
        raise ExportRefused("path is empty")
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    if not candidate.suffix:
        candidate = candidate.with_name(candidate.name + "." + EXTENSIONS.get(mime, "png"))
    resolved = candidate.resolve()  # follows symlinks, including a link at the file itself
    if resolved == root or not resolved.is_relative_to(root):
        raise ExportRefused(f"{path} is outside the export directory {root}",
                           next_step="Give a path relative to it, e.g. images/hero.png.")
    return resolved


def write(file: Path, data: bytes, *, overwrite: bool) -> None:
    """Write atomically (a temporary file renamed into place), creating parent directories."""
    if file.exists() and not overwrite:
        raise ExportRefused(f"{file} exists", next_step="Pick another path, or pass overwrite=true.")
    if file.is_dir():
        raise ExportRefused(f"{file} is a directory")
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".mj-export-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; an exported image is an ordinary file
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
