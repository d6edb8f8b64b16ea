"""export_image: an image, full size, one of a video's clips, or a texts record's texts (a .txt file),
written to a file in the export directory (``media/export.py`` holds the rules of the write); an
authenticated principal's exports go to a folder of its own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
from pydantic import Field

from ..core.kinds import Kind
from ..core.operations import EXPORT_IMAGE
from ..errors import InvalidInput
from ..media import export
from ..records import Record
from ..settings import default_export_dir
from .calls import Call, ImageRef, runs
from .plans import not_one_picture


@dataclass
class Exported:
    name: str
    path: str
    size: int
    mime: str


@runs(EXPORT_IMAGE)
async def export_image(
    call: Call,
    image: ImageRef,
    path: Annotated[str, Field(description="File path in the export directory.")],
    overwrite: bool = False,
    clip: Annotated[int | None, Field(ge=1, le=4)] = None,
) -> Exported:
    """Save an image, full size, or a video's clip, to a file in the export directory."""
    record = await call.workspace.resolve(image)
    if record.kind is Kind.EDITS:
        raise await not_one_picture(call, record)
    checked_clip(record, clip)
    # ImageUnavailable says why, and what to do. A texts record is written as text (.txt).
    data, mime = await (call.studio.media.clip(record, clip) if clip is not None else call.studio.content(record))
    folder = export_dir(call)
    file = await anyio.to_thread.run_sync(lambda: export.save(folder, path, data, mime, overwrite=overwrite))
    return Exported(name=record.name, path=str(file), size=len(data), mime=mime)


def checked_clip(record: Record, clip: int | None) -> None:
    """A video is saved one clip at a time; an image has no clips."""
    video = record.kind is Kind.VIDEOS
    if video and clip is None:
        raise InvalidInput(
            f"{record.name} is a video of four clips",
            next_step=f'Say which: {EXPORT_IMAGE}(image="{record.name}", clip=1, path="{record.name}-1.mp4").',
        )
    if clip is not None and not video:
        raise InvalidInput(f"{record.name} is an image, with no clips", next_step="Leave clip out.")


def export_dir(call: Call) -> Path | None:
    """The local user's exports go to the export directory (None: the default); an authenticated
    principal's to a folder of its own inside it, so that no principal replaces, or learns the names
    of, another's files."""
    settings, key = call.studio.settings, call.workspace.key
    if key == settings.workspace:
        return settings.export_dir
    base = settings.export_dir if settings.export_dir is not None else default_export_dir()
    return Path(base) / "principals" / hashlib.sha256(key.encode()).hexdigest()[:24]
