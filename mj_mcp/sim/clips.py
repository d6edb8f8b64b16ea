"""Real MP4 clips for simulated videos: a few frames moving over the start picture, encoded to H.264.

Each of a video's four clips starts on its start picture (ours, drawn from its recipe; a foreign one
fetched or a placeholder, as for image prompts) and moves over it its own way: a slow zoom towards a
corner, with a soft light drifting across, so a person tells the four apart. With an end picture the
last frames cross-fade into it, so the last frame is that picture; with ``loop`` the motion returns, so
the last frame is the first. An extension replays the clip it extends, then moves on from its last
frame. Frames are drawn at half size (the encoder scales them up) and encoded by PyAV with the libx264
its wheels ship (``ultrafast``, one thread), so a clip costs a fraction of a second and some tens of
kilobytes. Clips are made when first fetched, one at a time, and kept with the rendered images under
the renderer's byte budget; PyAV (and its codec libraries) is loaded only then.
"""

from __future__ import annotations

import io
import math
import random
import threading
from collections.abc import Callable, Iterator

from PIL import Image, ImageDraw, ImageOps

from .geometry import MAX_RATIO, Size, half
from .records import Footage, SimVideo
from .render import Renderer, seed_of

FPS = 12
# Frames per segment: two seconds (upstream's clips run about five), cheap to draw and encode.
FRAMES = 24
# A video and four extensions, as Midjourney's 21 seconds allow.
MAX_SEGMENTS = 5
SHORT_SIDE = {"480p": 480, "720p": 720}
# How each clip moves: where its zoom heads (fractions of the room left at each side) and how far.
_MOTIONS = ((0.5, 0.5, 0.22), (0.0, 0.2, 0.18), (1.0, 0.8, 0.18), (0.3, 1.0, 0.2))


def frame_size(aspect: tuple[int, int], resolution: str) -> Size:
    """A clip's frame size: the short side 480 or 720 pixels, the long one by the aspect (clamped to
    MAX_RATIO), both multiples of 16 as H.264 likes them."""
    short = SHORT_SIDE[resolution]
    ratio = min(max(aspect[0] / aspect[1], 1 / MAX_RATIO), MAX_RATIO)
    long_side = max(short, round(short * max(ratio, 1 / ratio) / 16.0) * 16)
    return (long_side, short) if ratio >= 1 else (short, long_side)


def _ease(t: float) -> float:
    return t * t * (3 - 2 * t)


def _segment(
    start: Image.Image, end: Image.Image | None, loop: bool, seed: int, k: int, palette: tuple[int, int, int]
) -> Iterator[Image.Image]:
    """One segment of clip ``k``: FRAMES frames moving over ``start`` (at the drawing size)."""
    w, h = start.size
    ax, ay, depth = _MOTIONS[(seed + k) % len(_MOTIONS)]
    rng = random.Random(seed_of("light", seed, k))
    x0, y0, x1, y1 = rng.random(), rng.random(), rng.random(), rng.random()
    fade_from = FRAMES - FRAMES // 3
    for i in range(FRAMES):
        t = i / (FRAMES - 1)
        # a loop goes out and comes back: its last frame is its first
        u = math.sin(math.pi * t) if loop else _ease(t)
        if i in (0, FRAMES - 1) and loop:
            u = 0.0
        zoom = 1 + depth * u
        cw, ch = w / zoom, h / zoom
        left, top = (w - cw) * ax, (h - ch) * ay
        frame = start.resize((w, h), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
        cx, cy = (x0 + (x1 - x0) * u) * w, (y0 + (y1 - y0) * u) * h
        r = min(w, h) / 7
        light = Image.new("L", (w, h), 0)
        ImageDraw.Draw(light).ellipse((cx - r, cy - r, cx + r, cy + r), fill=90)
        frame = Image.composite(Image.new("RGB", (w, h), palette), frame, light)
        if end is not None and i >= fade_from:
            frame = Image.blend(frame, end, (i - fade_from + 1) / (FRAMES - fade_from))
        yield frame


class Clips:
    """Draws and encodes the clips of the simulator's videos; thread-safe, one clip at a time."""

    def __init__(self, renderer: Renderer, lookup: Callable[[str], SimVideo | None]) -> None:
        self._renderer = renderer
        self._lookup = lookup  # video_id -> the video, for an extension's parent
        self._lock = threading.Lock()

    def clip(self, video: SimVideo, k: int) -> bytes:
        """Clip ``k`` (0-3) of ``video`` as MP4 bytes."""
        # One at a time: a second request for the same clip waits and finds it kept, and only one
        # encoder's buffers exist at once.
        with self._lock:
            return self._renderer.kept(
                ("clip", video.footage.key, k), lambda: encode(self.frames(video.footage, k), video.footage.size)
            )

    def cover(self, video: SimVideo) -> bytes:
        """The cover upstream answers with: the clips' first frame, as a PNG at the frame size."""

        def make() -> bytes:
            first = next(self.frames(video.footage, 0)).resize(video.footage.size, Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            first.save(buf, "PNG", compress_level=1)
            return buf.getvalue()

        with self._lock:
            return self._renderer.kept(("cover", video.footage.key), make)

    def frames(self, footage: Footage, k: int) -> Iterator[Image.Image]:
        """Every frame of clip ``k`` at half the frame size: the parent's clip first, for an extension."""
        size = half(footage.size)
        palette = _palette(footage.text)
        end = self._fitted(footage.end, size) if footage.end else None
        if footage.parent is None:
            start = self._fitted(footage.start, size)
            yield from _segment(start, end, footage.loop, footage.seed, k, palette)
            return
        parent = self._lookup(footage.parent)
        if parent is None:
            raise KeyError(f"video {footage.parent} is gone")
        last: Image.Image | None = None
        for frame in self.frames(parent.footage, footage.index):
            last = frame if frame.size == size else frame.resize(size, Image.Resampling.BILINEAR)
            yield last
        assert last is not None
        yield from _segment(last, end, footage.loop, footage.seed, k, palette)

    def _fitted(self, url: str, size: Size) -> Image.Image:
        return ImageOps.fit(self._renderer.picture(url, size), size, Image.Resampling.BILINEAR)


def _palette(text: str) -> tuple[int, int, int]:
    rng = random.Random(seed_of("palette", text))
    return rng.randrange(140, 256), rng.randrange(140, 256), rng.randrange(140, 256)


def encode(frames: Iterator[Image.Image], size: Size) -> bytes:
    """An H.264 MP4 of ``frames``, scaled to ``size`` by the encoder's scaler."""
    # Loaded here: only a simulator that serves a clip pays for PyAV's codec libraries.
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "28", "threads": "1"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for img in frames:
            # PyAV's stubs leave from_image untyped (it takes a PIL image, makes an rgb24 frame).
            rgb = av.VideoFrame.from_image(img)  # type: ignore[no-untyped-call]
            frame = rgb.reformat(width=size[0], height=size[1], format="yuv420p")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()
