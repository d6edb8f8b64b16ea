"""A video's poster: what the model sees of four clips it cannot watch.

The model never gets video bytes. It gets one picture: the first frame of each clip on a 2x2 contact
sheet, in upstream's order (1-4 from top-left, labelled like a grid's quadrants when it is made small),
and the facts of each clip (its frame size and length) for the result's text.

First frames are decoded with PyAV (``av``), the library the simulator encodes its clips with; its
wheels bring FFmpeg's libraries, so nothing else is installed. A clip is bytes from a CDN, so decoding
is bounded: an MP4 container only (no format probing), a video stream of a known codec, at most
``MAX_FRAME_PIXELS`` a frame (checked from the stream's header before decoding), at most
``MAX_PACKETS`` packets read and ``DECODE_BUDGET_S`` seconds spent to reach the first frame, one
decoder thread. The bytes themselves are bounded by the download (``Media.clip``). Everything here
blocks: ``Media`` runs it in a worker thread under its decode limiter.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UnreadableImage
from .previews import JPEG_QUALITY, label_quadrants

if TYPE_CHECKING:
    from PIL import Image

# An MP4 starts with a box of type "ftyp" (ISO/IEC 14496-12), its size in the four bytes before.
_FTYP = b"ftyp"
# Decoders we accept in a clip: what video models and CDNs serve in MP4.
CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})
# A 4K frame; Midjourney's clips are 480p or 720p.
MAX_FRAME_PIXELS = 3840 * 2160
# Packets read before the first frame must have come out (a decoder holds back only a few).
MAX_PACKETS = 240
DECODE_BUDGET_S = 5.0


def is_mp4(data: bytes) -> bool:
    """Whether ``data`` starts like an MP4 (or QuickTime) file."""
    return len(data) >= 12 and data[4:8] == _FTYP


@dataclass(frozen=True)
class ClipFacts:
    """What a clip is, read from its header: frame size and length (None where it does not say)."""

    width: int
    height: int
    seconds: float | None


def first_frame(data: bytes) -> tuple[Image.Image, ClipFacts]:
    """The first frame of an MP4 clip, as an RGB picture, and the clip's facts. Raises
    ``UnreadableImage`` for anything that is not a clip we decode, whatever PyAV raised."""
    if not is_mp4(data):
        raise UnreadableImage("not an MP4 clip")
    try:
        return _first_frame(data)
    except UnreadableImage:
        raise
    except Exception as exc:
        raise UnreadableImage(f"unreadable clip ({type(exc).__name__})") from None


def _first_frame(data: bytes) -> tuple[Image.Image, ClipFacts]:
    # Loaded here: a server that never shows a video never loads FFmpeg's libraries.
    import av

    deadline = time.monotonic() + DECODE_BUDGET_S
    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        if not container.streams.video:
            raise UnreadableImage("an MP4 without a video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context
        if codec.name not in CODECS:
            raise UnreadableImage(f"a clip in {codec.name}, which is not decoded here")
        if not 0 < codec.width * codec.height <= MAX_FRAME_PIXELS:
            raise UnreadableImage(f"a {codec.width}x{codec.height} frame, over {MAX_FRAME_PIXELS:,} pixels")
        codec.thread_count = 1
        seconds = container.duration / av.time_base if container.duration else None
        facts = ClipFacts(codec.width, codec.height, seconds)
        for read, packet in enumerate(container.demux(stream), start=1):
            if read > MAX_PACKETS or time.monotonic() > deadline:
                raise UnreadableImage("no first frame within its bounds")
            for frame in packet.decode():
                # PyAV's stubs leave to_image untyped (it gives a PIL image).
                picture: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
                return picture.convert("RGB"), facts
    raise UnreadableImage("a clip without a frame")


def contact_sheet(frames: list[Image.Image | None], long_side: int, *, labelled: bool) -> bytes:
    """A JPEG of up to four frames on a 2x2 sheet, 1-4 from top-left, each fitted in a cell of the largest
    frame's shape (never enlarged), the sheet's long side at most ``long_side``."""
    shown = [f for f in frames if f is not None]
    if not shown:
        raise UnreadableImage("no clip's first frame could be decoded")
    # Pillow when a poster is made, not at start-up (start-up is the SDK's).
    from PIL import Image

    largest = max(shown, key=lambda f: f.width * f.height)
    scale = min(1.0, long_side / 2 / max(largest.size))
    cell = (max(1, round(largest.width * scale)), max(1, round(largest.height * scale)))
    out = Image.new("RGB", (cell[0] * 2, cell[1] * 2), (48, 48, 48))
    for n, frame in enumerate(frames[:4]):
        if frame is None:
            continue
        # reducing_gap=1: as the thumbnails do, box-reduce first, Lanczos for the rest.
        frame.thumbnail(cell, Image.Resampling.LANCZOS, reducing_gap=1.0)
        x = (n % 2) * cell[0] + (cell[0] - frame.width) // 2
        y = (n // 2) * cell[1] + (cell[1] - frame.height) // 2
        out.paste(frame, (x, y))
    if labelled:
        label_quadrants(out)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()
