"""Real pictures for simulated results: cheap, deterministic, and faithful where clients check.

Each image is drawn from its ``Recipe``: a generate grid is four prompt-coloured scenes with big
quadrant numbers; ``upscaleN`` is the exact crop of the parent grid; variations blend the source
with a new scene; zoom shrinks the source into new surroundings; pan shifts it and fills the strip;
``upscale_2x/4x`` resize; ``variation_region`` repaints only where the mask is white, so every other
pixel equals the source; an edit repaints a picture named by URL (ours, fetched, or a placeholder),
wholly or where its mask is white. Scenes are drawn at 1/8 size and scaled up, which keeps a 2048x2048 grid
well under a tenth of a second to draw. Renders are cached (LRU, bounded by bytes: Pillow keeps an RGB
pixel in 4 bytes, so a 2048x2048 grid holds 16 MiB while it is cached).

A small rendition (``?width=&height=``, half the size or less) is drawn at its own size from the same
1/8-size scenes, as a CDN serves a stored rendition without opening the
original: a burst of finished jobs then costs the simulator a 512 px drawing each (about 2 ms, not 35),
on the two cores the server under test shares with it. It is the full picture scaled down, but for
the edges of its shapes and its numbers, drawn at that size.
"""

from __future__ import annotations

import colorsys
import contextlib
import hashlib
import io
import random
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from ..core.actions import Kind
from .geometry import Size, fit_long_side, half, quadrant_box, scale
from .records import Recipe, SimImage

if TYPE_CHECKING:
    from .cdn import Picture

PREVIEW_LONG_SIDE = 512  # upstream's stream previews: 512 raw, 256 thumbnail
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BAND_ROWS = 64
MAX_MASK_PIXELS = 64_000_000  # a mask beyond this is treated as unreadable, never decoded


def seed_of(*parts: object) -> int:
    """A stable 64-bit seed from anything printable (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def _colour(rng: random.Random, hue: float, spread: float = 0.12) -> tuple[int, int, int]:
    h = (hue + rng.uniform(-spread, spread)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, rng.uniform(0.45, 0.95), rng.uniform(0.45, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def detail_of(size: Size) -> Size:
    """The size a scene of ``size`` is drawn at before it is scaled up."""
    return max(8, size[0] // 8), max(8, size[1] // 8)


def scene(palette_seed: int, layout_seed: int, size: Size, detail: Size | None = None) -> Image.Image:
    """A soft abstract picture: colours from the prompt, shapes from the candidate; drawn at ``detail``
    (the full picture's, for a rendition of it) and scaled to ``size``."""
    hue = (palette_seed % 1000) / 1000.0
    pal = random.Random(palette_seed)
    rng = random.Random(layout_seed)
    sw, sh = detail or detail_of(size)
    top, bottom = _colour(pal, hue), _colour(pal, hue + 0.5, 0.2)
    # top to bottom, blended in C (ImageOps.colorize builds its table in Python: a third of a rendition's time)
    bg = Image.composite(Image.new("RGB", (sw, sh), bottom), Image.new("RGB", (sw, sh), top), _ramp((sw, sh)))
    draw = ImageDraw.Draw(bg)
    for _ in range(rng.randint(4, 7)):
        colour = _colour(rng, hue + rng.choice((0.0, 0.33, 0.66)))
        x, y = rng.uniform(-0.1, 1.0) * sw, rng.uniform(-0.1, 1.0) * sh
        w, h = rng.uniform(0.15, 0.5) * sw, rng.uniform(0.15, 0.5) * sh
        shape = rng.randrange(3)
        if shape == 0:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        elif shape == 1:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        else:
            draw.polygon([(x, y + h), (x + w / 2, y), (x + w, y + h)], fill=colour)
    return bg.resize(size, Image.Resampling.BILINEAR)


@lru_cache(maxsize=64)
def _ramp(size: Size) -> Image.Image:
    """A mask from 0 at the top to 255 at the bottom (callers must not modify it)."""
    return Image.linear_gradient("L").resize(size)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: a small bitmap font, still legible
        return ImageFont.load_default()


def badge(img: Image.Image, n: int) -> None:
    """A big quadrant number in a white disc, top-left, so a person can tell candidates apart."""
    r = max(10, min(img.size) // 7)
    cx = cy = r + r // 3
    draw = ImageDraw.Draw(img)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 255, 255), outline=(0, 0, 0), width=max(2, r // 10))
    draw.text((cx, cy), str(n), fill=(0, 0, 0), font=_font(int(r * 1.5)), anchor="mm")


def footprint(img: Image.Image) -> int:
    """Bytes Pillow holds for an image's pixels: one a pixel in the 8-bit modes, four in the others."""
    return img.width * img.height * (1 if img.mode in ("1", "L", "P") else 4)


def swatch(url: str, size: Size) -> Image.Image:
    """Stand-in for an image-prompt URL that is not fetched: a colour derived from the URL."""
    rng = random.Random(seed_of("swatch", url))
    img = Image.new("RGB", (16, 16), _colour(rng, rng.random()))
    ImageDraw.Draw(img).rectangle((0, 6, 15, 9), fill=_colour(rng, rng.random()))
    return img.resize(size, Image.Resampling.NEAREST)


class Renderer:
    """Draws and caches images; thread-safe. Renders run in worker threads, several at once: the cache
    is under one short lock, each picture is drawn under a lock of its own (two requests for it draw it
    once; a picture drawn from another takes that one's lock inside its own, and sources are always
    older, so the locks never wait in a circle), and encodings run outside any lock (a drawn picture
    is never modified). One lock around everything made a burst of downloads wait in single file."""

    def __init__(
        self,
        lookup: Callable[[str], SimImage | None],
        own: Callable[[str], Picture | None],
        foreign: Callable[[str], Image.Image | None],
        *,
        budget_mb: int = 256,
    ) -> None:
        self._lookup = lookup  # image_id -> the image, for sources
        self._own = own  # URL -> the picture, when it is one of ours
        self._foreign = foreign  # URL -> a decoded input, or None for a swatch (inputs.py decides)
        self._lock = threading.RLock()
        # recipe key -> (its drawing lock, how many threads hold or wait for it)
        self._drawing: dict[str, tuple[threading.Lock, int]] = {}
        self._budget = budget_mb * 1024 * 1024
        self._raw: OrderedDict[str, Image.Image] = OrderedDict()
        self._encoded: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._bytes = 0

    def configure(self, budget_mb: int) -> None:
        with self._lock:
            self._budget = budget_mb * 1024 * 1024
            self._evict()

    def clear(self) -> None:
        with self._lock:
            self._raw.clear()
            self._encoded.clear()
            self._bytes = 0

    # --- cache
    def _evict(self) -> None:
        while self._bytes > self._budget and (self._encoded or len(self._raw) > 1):
            if self._encoded:
                _, data = self._encoded.popitem(last=False)
                self._bytes -= len(data)
            else:
                _, img = self._raw.popitem(last=False)
                self._bytes -= footprint(img)

    def raw(self, recipe: Recipe) -> Image.Image:
        """The full-resolution pixels (callers must not modify the returned image)."""
        img = self._cached(recipe)
        if img is not None:
            return img
        self._fetch_inputs(recipe)
        with self._drawing_lock(recipe.key):
            img = self._cached(recipe)  # another thread may have drawn it meanwhile
            if img is not None:
                return img
            img = self._draw(recipe, recipe.size)
            if img.size != recipe.size:  # never trust an op to get the size right
                img = img.resize(recipe.size, Image.Resampling.BILINEAR)
            with self._lock:
                self._raw[recipe.key] = img
                self._bytes += footprint(img)
                self._evict()
            return img

    def _fetch_inputs(self, recipe: Recipe) -> None:
        for url in (*recipe.urls, *([recipe.mask] if isinstance(recipe.mask, str) else [])):
            if self._own(url) is None:
                self._foreign(url)  # a slow fetch (if allowed at all) waits outside the lock, unless nested

    def _small(self, recipe: Recipe, size: Size) -> Image.Image | None:
        """A rendition of ``size`` drawn at that size (module docstring), where the picture is drawn by
        ``_draw`` (not cut or copied from another) and ``size`` is half its size or less; else None."""
        small = size[0] * 2 <= recipe.size[0] and size[1] * 2 <= recipe.size[1]
        # Whether or not the full picture is drawn by now: one URL, the same bytes.
        if not small or recipe.op in ("crop", "hq"):
            return None
        self._fetch_inputs(recipe)
        # Drawn at an even size, so the four quadrants fill it.
        img = self._draw(recipe, (size[0] + size[0] % 2, size[1] + size[1] % 2))
        return img if img.size == size else img.resize(size, Image.Resampling.BILINEAR)

    @contextlib.contextmanager
    def _drawing_lock(self, key: str) -> Iterator[None]:
        """The lock one picture is drawn under; forgotten once nobody holds or waits for it."""
        with self._lock:
            lock, users = self._drawing.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._drawing[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._drawing[key]
                if users == 1:
                    del self._drawing[key]
                else:
                    self._drawing[key] = (lock, users - 1)

    def _cached(self, recipe: Recipe) -> Image.Image | None:
        with self._lock:
            img = self._raw.get(recipe.key)
            if img is not None:
                self._raw.move_to_end(recipe.key)
            return img

    def _cached_bytes(self, key: tuple[object, ...]) -> bytes | None:
        with self._lock:
            data = self._encoded.get(key)
            if data is not None:
                self._encoded.move_to_end(key)
            return data

    def kept(self, key: tuple[object, ...], make: Callable[[], bytes]) -> bytes:
        """Bytes ``make`` makes (outside the lock: a video clip takes a while), kept with the encoded
        images, least recently used first, under the same budget."""
        data = self._cached_bytes(key)
        if data is not None:
            return data
        data = make()
        self._keep_encoded(key, data)
        return data

    def encoded(self, recipe: Recipe, size: Size | None = None, *, fmt: str = "PNG", box: int | None = None) -> bytes:
        """PNG (or preview WebP) bytes of the image, of quadrant ``box`` of it, at ``size``."""
        key = (recipe.key, size, fmt, box)
        data = self._cached_bytes(key)
        if data is not None:
            return data
        img = self._small(recipe, size) if size is not None and box is None else None
        if img is None:
            img = self.raw(recipe)
            if box is not None:
                img = img.crop(quadrant_box(img.size, box))
            if size is not None and size != img.size:
                if size == half(img.size) and img.width % 2 == 0 and img.height % 2 == 0:
                    img = img.reduce(2)
                else:
                    img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        data = _encode(img, fmt)
        self._keep_encoded(key, data)
        return data

    def _keep_encoded(self, key: tuple[object, ...], data: bytes) -> None:
        with self._lock:
            if key not in self._encoded:
                self._encoded[key] = data
                self._bytes += len(data)
                self._evict()

    def preview(self, recipe: Recipe, progress: int, size: Size | None) -> bytes:
        """A blurry 512-pixel WebP of the final picture, sharper as progress grows.

        Kept with the other encodings: a view that polls the preview every second or two costs one
        encode per progress step (about 40 ms for a 2048x2048 grid here), not one per request.
        """
        key = (recipe.key, size, "preview", progress)
        data = self._cached_bytes(key)
        if data is not None:
            return data
        full = self.raw(recipe)
        img = full.resize(fit_long_side(full.size, PREVIEW_LONG_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
        radius = max(0.0, (100 - progress) / 6.0)
        if radius:
            img = img.filter(ImageFilter.GaussianBlur(radius))
        if size is not None and size != img.size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        data = _encode(img, "WEBP")
        self._keep_encoded(key, data)
        return data

    # --- drawing
    def _source(self, recipe: Recipe) -> SimImage:
        rec = self._lookup(recipe.source or "")
        if rec is None:
            raise KeyError(f"source image {recipe.source} is gone")
        return rec

    def _source_pixels(self, recipe: Recipe, cell: Size) -> Image.Image:
        """The picture an action works from: a grid's quadrant or a whole image, at ``cell`` size."""
        rec = self._source(recipe)
        img = self.raw(rec.recipe)
        if rec.kind == Kind.GRID and recipe.quadrant:
            img = img.crop(quadrant_box(img.size, recipe.quadrant))
        if img.size != cell:
            img = img.resize(cell, Image.Resampling.BILINEAR, reducing_gap=2.0)
        return img

    def _draw(self, recipe: Recipe, size: Size) -> Image.Image:
        """The picture at ``size``: its full size, or a rendition's (``_small``), from the same scenes."""
        if recipe.op == "crop":
            rec = self._source(recipe)
            img = self.raw(rec.recipe)
            if rec.kind == Kind.GRID and recipe.quadrant:
                return img.crop(quadrant_box(img.size, recipe.quadrant))
            return img.copy()
        if recipe.op == "hq":
            return self.raw(self._source(recipe).recipe).resize(recipe.size, Image.Resampling.BILINEAR)
        cell = half(size)
        detail = detail_of(half(recipe.size))
        palette = seed_of("palette", recipe.text, recipe.urls)
        grid = Image.new("RGB", size)
        mask = None
        if recipe.op == "edit":
            src = ImageOps.fit(self.picture(recipe.urls[0], cell), cell, Image.Resampling.BILINEAR)
            mask = self._mask(recipe, cell) if recipe.mask is not None else None
        elif recipe.op == "generate":
            inputs = [self._input(u) for u in recipe.urls]
            fitted = [
                ImageOps.fit(im if im is not None else swatch(u, cell), cell, Image.Resampling.BILINEAR)
                for u, im in zip(recipe.urls, inputs, strict=False)
            ]
        else:
            src = self._source_pixels(recipe, cell)
            mask = self._mask(recipe, cell) if recipe.op == "region" else None
        for k in range(1, 5):
            fresh = scene(palette, seed_of(recipe.seed, k), cell, detail)
            if recipe.op == "generate":
                cand = _mix(fitted, fresh, k) if fitted else fresh
            elif recipe.op == "variation":
                cand = Image.blend(src, fresh, recipe.strength)
            elif recipe.op in ("region", "edit") and mask is not None:
                # a palette of its own, so the repainted area is plainly new; the rest stays byte-identical
                paint = scene(seed_of("repaint", palette, k), seed_of(recipe.seed, k), cell, detail)
                cand = Image.composite(Image.blend(src, paint, 0.85), src, mask)
            elif recipe.op == "edit":
                # no mask: the whole picture repainted, still plainly itself
                cand = Image.blend(src, fresh, 0.45)
            elif recipe.op == "zoom":
                cand = fresh
                small = src.resize(scale(cell, 1 / recipe.factor), Image.Resampling.BILINEAR, reducing_gap=2.0)
                cand.paste(small, ((cell[0] - small.width) // 2, (cell[1] - small.height) // 2))
            else:  # pan: the picture moves away from the new strip
                cand = fresh
                dx, dy = {
                    "left": (cell[0] // 3, 0),
                    "right": (-cell[0] // 3, 0),
                    "up": (0, cell[1] // 3),
                    "down": (0, -cell[1] // 3),
                }[recipe.direction]
                cand.paste(src, (dx, dy))
            # a number would repaint pixels outside the mask
            if mask is None:
                badge(cand, k)
            grid.paste(cand, quadrant_box(size, k)[:2])
        return grid

    def _mask(self, recipe: Recipe, cell: Size) -> Image.Image:
        """The repaint mask at ``cell`` size: 255 where the client's mask is white (>127), else 0."""
        img: Image.Image | None = None
        if isinstance(recipe.mask, bytes):
            try:
                img = Image.open(io.BytesIO(recipe.mask), formats=("PNG", "JPEG", "WEBP"))
                if img.width * img.height > MAX_MASK_PIXELS:
                    raise ValueError("mask too large")
                img.load()
            except Exception:
                img = None
        elif isinstance(recipe.mask, str):
            img = self._input(recipe.mask)
        if img is None:  # an unreadable mask URL: repaint the centre so the result still differs
            img = Image.new("L", (4, 4), 0)
            img.paste(255, (1, 1, 3, 3))
        img = img.convert("L")
        if img.size != cell:
            img = img.resize(cell, Image.Resampling.NEAREST)
        return img.point(lambda v: 255 if v > 127 else 0)

    def _input(self, url: str) -> Image.Image | None:
        """An image-prompt, blend, mask or edit input: ours are drawn here (a tile cut from its image),
        others come from inputs.py (None: not fetched)."""
        picture = self._own(url)
        if picture is None:
            return self._foreign(url)
        img = self.raw(picture.image.recipe)
        return img.crop(quadrant_box(img.size, picture.box)) if picture.box is not None else img

    def picture(self, url: str, size: Size) -> Image.Image:
        """The picture at ``url`` (callers must not modify it), or a placeholder swatch of ``size``."""
        img = self._input(url)
        return img if img is not None else swatch(url, size)


def _mix(inputs: list[Image.Image], fresh: Image.Image, k: int) -> Image.Image:
    """Blend the image prompts into a candidate; each candidate leans towards another input."""
    if len(inputs) == 1:
        return Image.blend(fresh, inputs[0], 0.55 + 0.1 * (k % 2))
    out = inputs[0]
    for i, img in enumerate(inputs[1:], start=2):
        out = Image.blend(out, img, 1.0 / i)  # running average
    out = Image.blend(out, inputs[(k - 1) % len(inputs)], 0.35)
    return Image.blend(out, fresh, 0.2)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(img: Image.Image) -> bytes:
    """An RGB picture as a PNG whose rows are not filtered, deflated at level 1.

    Pillow's encoder tries every PNG filter on every row: at the simulator's sizes that is most of the
    time a picture takes to serve (5 ms of a 512 px rendition's 7, 70 ms for a 2048 px grid); unfiltered,
    it is half that, and as valid a PNG for every decoder. Larger files on loopback cost nothing."""
    width, height = img.size
    stride, deflate, parts = 3 * width, zlib.compressobj(1), []
    # A band of rows at a time: a 2048 px grid's 12 MB of pixels never sit in memory as bytes, twice
    # over (the embedded simulator's RSS grew by 24 MiB when they did).
    for top in range(0, height, PNG_BAND_ROWS):
        band = img.crop((0, top, width, min(top + PNG_BAND_ROWS, height))).tobytes()
        parts.append(deflate.compress(b"".join(b"\0" + band[i : i + stride] for i in range(0, len(band), stride))))
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str) -> bytes:
    if fmt == "PNG" and img.mode == "RGB":
        return png(img)
    buf = io.BytesIO()
    if fmt == "WEBP":
        img.save(buf, "WEBP", quality=60, method=0)
    else:
        img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
