"""Thumbnails the model can look at: a small JPEG of a result, with quadrant labels on a grid.

The model iterates by looking ("the third one, but wider"), so a grid's thumbnail carries a small
1-4 in each quadrant's corner, in the order the actions number them (top-left, top-right,
bottom-left, bottom-right). An edit's four results, four pictures upstream, are shown the same way:
one sheet of them as a 2x2 grid, labelled 1-4 (``sheet``). A 512 px JPEG is tens of KB, far below what
hosts accept per result.

Decoding the full image is most of a thumbnail's cost (a 2048 px PNG: tens of ms and 16 MB of pixels),
so where the image's URL says how to ask for a smaller one (upstream's display URLs carry ``width`` and
``height``; the simulator honours them too), the thumbnail is made from that rendition, asked at exactly
the size the thumbnail would have (``fitted``), and checked to be that size before it is used.
"""

from __future__ import annotations

import functools
import io
import math
import re
from typing import TYPE_CHECKING

from ..errors import UnreadableImage

if TYPE_CHECKING:
    from PIL import Image, ImageFont

JPEG_QUALITY = 80


def sniff_mime(data: bytes) -> str | None:
    """The image type from its first bytes; headers lie (``application/octet-stream``) more often."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


_WIDTH = re.compile(r"(?<=[?&])width=\d+(?=&|$)")
_HEIGHT = re.compile(r"(?<=[?&])height=\d+(?=&|$)")


def fitted(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The size ``thumbnail`` gives an image of ``size``: Pillow's ``Image.thumbnail`` arithmetic (the
    aspect ratio kept as closely as whole pixels allow), never larger than the image."""
    width, height = size
    if width <= long_side and height <= long_side:
        return size
    aspect = width / height
    x, y = long_side, long_side
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(min(math.floor(x / aspect), math.ceil(x / aspect), key=lambda n: abs(aspect - x / n) if n else 0), 1)
    return x, y


def sized_url(url: str | None, size: tuple[int, int]) -> str | None:
    """``url`` asking for ``size`` when it carries ``width`` and ``height`` parameters (upstream's display
    URLs: ``...&width=1024&height=1024``), everything else in it as it was; else None."""
    if not url or len(_WIDTH.findall(url)) != 1 or len(_HEIGHT.findall(url)) != 1:
        return None
    return _HEIGHT.sub(f"height={size[1]}", _WIDTH.sub(f"width={size[0]}", url))


def dimensions(data: bytes) -> tuple[int, int] | None:
    """An image's size from its header (nothing decoded), or None when it does not open."""
    # Pillow when a picture is made, not at start-up (issue 21: start-up is the SDK's).
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


def thumbnail(data: bytes, long_side: int, *, grid: bool) -> bytes:
    """JPEG bytes of the image scaled so its long side is at most ``long_side``; labelled if a grid.

    Raises ``UnreadableImage`` for anything Pillow cannot or should not decode, whatever it raised
    (its errors are a zoo: OSError, SyntaxError, struct.error, DecompressionBombError...).
    """
    # Pillow when a picture is made, not at start-up (issue 21: start-up is the SDK's).
    from PIL import Image

    try:
        return _thumbnail(data, long_side, grid=grid)
    except Image.DecompressionBombError:
        raise UnreadableImage(f"over {Image.MAX_IMAGE_PIXELS:,} pixels, too large to decode") from None
    except Exception as exc:
        raise UnreadableImage(f"unreadable image ({type(exc).__name__})") from None


def _thumbnail(data: bytes, long_side: int, *, grid: bool) -> bytes:
    img = _scaled(data, long_side)
    if grid:
        label_quadrants(img)
    return _jpeg(img)


def _scaled(data: bytes, long_side: int) -> Image.Image:
    """The picture decoded as RGB, its long side at most ``long_side``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as src:
        # Pillow only warns between its limit and twice it: refuse there too, a PNG decodes at full
        # size (3 bytes a pixel as RGB) and two previews are made at once.
        if Image.MAX_IMAGE_PIXELS is not None and src.width * src.height > Image.MAX_IMAGE_PIXELS:
            raise Image.DecompressionBombError("too many pixels")
        src.draft("RGB", (long_side, long_side))  # JPEG sources decode at a reduced scale: faster
        img = src.convert("RGB")
    # reducing_gap=1: box-reduce by the whole factor first, Lanczos only for the rest; a third of
    # the CPU of a full Lanczos pass (5.6 ms against 19 ms for 2048 px here), no visible difference.
    img.thumbnail((long_side, long_side), Image.Resampling.LANCZOS, reducing_gap=1.0)
    return img


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def sheet(pictures: list[bytes], long_side: int) -> bytes:
    """JPEG bytes of up to four pictures side by side as a 2x2 grid (1-4 from top-left, each centred in
    its quadrant), its long side at most ``long_side``, labelled as a grid's quadrants are.

    Raises ``UnreadableImage`` as ``thumbnail`` does, when any of them will not decode.
    """
    from PIL import Image

    try:
        cells = [_scaled(data, max(1, long_side // 2)) for data in pictures[:4]]
    except Image.DecompressionBombError:
        raise UnreadableImage(f"over {Image.MAX_IMAGE_PIXELS:,} pixels, too large to decode") from None
    except Exception as exc:
        raise UnreadableImage(f"unreadable image ({type(exc).__name__})") from None
    if not cells:
        raise UnreadableImage("no picture to show")
    width, height = max(c.width for c in cells), max(c.height for c in cells)
    board = Image.new("RGB", (2 * width, 2 * height))
    for n, cell in enumerate(cells):
        x, y = (n % 2) * width + (width - cell.width) // 2, (n // 2) * height + (height - cell.height) // 2
        board.paste(cell, (x, y))
    label_quadrants(board)
    return _jpeg(board)


def size_of(data: bytes) -> tuple[int, int]:
    """A picture's width and height, read from its header: its first bytes are enough.

    Raises ``UnreadableImage`` when they hold no picture's header Pillow reads.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception as exc:
        raise UnreadableImage(f"no picture's size in its first {len(data):,} bytes ({type(exc).__name__})") from None


def quadrant_label_boxes(size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Where the labels 1-4 go: a small square inside each quadrant's top-left corner."""
    w, h = size
    side = max(14, min(w, h) // 14)
    pad = max(3, side // 4)
    return [(x + pad, y + pad, x + pad + side, y + pad + side) for y in (0, h // 2) for x in (0, w // 2)]


def label_quadrants(img: Image.Image) -> None:
    boxes = quadrant_label_boxes(img.size)
    for (tile, mask), box in zip(_labels(boxes[0][2] - boxes[0][0]), boxes, strict=True):
        img.paste(tile, box[:2], mask)


@functools.lru_cache(maxsize=16)
def _labels(side: int) -> list[tuple[Image.Image, Image.Image]]:
    """The labels 1-4 of a square ``side`` px (a rounded black square, white edge, white number), each
    with the mask of its shape: drawn once per size, pasted on every thumbnail of that size (drawing the
    text was a sixth of a thumbnail's time). Callers must not modify them."""
    from PIL import Image, ImageDraw

    font = _font(int(side * 0.8))
    box = (0, 0, side, side)
    mask = Image.new("L", (side + 1, side + 1), 0)
    ImageDraw.Draw(mask).rounded_rectangle(box, radius=side // 5, fill=255, outline=255)
    labels = []
    for number in range(1, 5):
        tile = Image.new("RGB", mask.size, (0, 0, 0))
        draw = ImageDraw.Draw(tile)
        draw.rounded_rectangle(box, radius=side // 5, fill=(0, 0, 0), outline=(255, 255, 255))
        draw.text((side / 2, side / 2), str(number), fill=(255, 255, 255), font=font, anchor="mm")
        labels.append((tile, mask))
    return labels


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()
