"""Regions and masks for ``variation_region``: shapes in fractions of the image to a mask image.

Upstream wants a grayscale image of exactly the source's raw size, white = repaint, as base64 JPEG
without a ``data:`` prefix (the guide's example). A pixel is inside a shape when its centre is:
that rule is exact and easy to check, where anti-aliased drawing would blur the edge. Rectangles are
drawn by Pillow; ellipses and polygons are filled span by span with the same centre rule.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from typing import Annotated, Any, Literal

from PIL import Image, ImageDraw
from pydantic import BaseModel, BeforeValidator, Field, model_validator

from ..errors import InvalidInput

MAX_POLYGON_POINTS = 64
MAX_MASK_BYTES = 8 * 1024 * 1024
MAX_MASK_PIXELS = 64_000_000  # more than any Midjourney image (4096 x 4096 = 16.8 M)
MAX_SHAPES = 16

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = Annotated[list[Fraction], Field(min_length=2, max_length=2)]


# One region in fractions of the image: a rect or an ellipse by its box, a polygon by its points.
# One flat model rather than a union of three: the schema the model reads on every turn is a third of
# the size, and the check that the right field is given is one validator. (No docstring: it would be
# published as the schema's description.)
class Shape(BaseModel):

    shape: Literal["rect", "ellipse", "polygon"]
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4, description="x0,y0,x1,y1")] | None = None
    points: Annotated[list[Point], Field(min_length=3, max_length=MAX_POLYGON_POINTS, description="[[x,y],...]")] | None = None

    @model_validator(mode="after")
    def _has_its_geometry(self) -> Shape:
        if self.shape == "polygon" and self.points is None:
            raise ValueError("a polygon needs points: [[x, y], ...], at least 3")
        if self.shape != "polygon" and self.box is None:
            raise ValueError(f"a {self.shape} needs box: [x0, y0, x1, y1]")
        return self

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """Pixel span [left, right) x [top, bottom) of the centres inside the box."""
        assert self.box is not None
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            raise InvalidInput(f"box {list(self.box)} is empty: x1 must exceed x0 and y1 exceed y0")
        return (_first_centre(x0 * width), _first_centre(y0 * height),
                _first_centre(x1 * width), _first_centre(y1 * height))


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value  # a lone shape is a list of one


Region = Annotated[list[Shape], BeforeValidator(_one_or_many), Field(min_length=1, max_length=MAX_SHAPES)]


def _first_centre(edge: float) -> int:
    """Index of the first pixel whose centre (i + 0.5) lies at or beyond ``edge``."""
    return math.ceil(edge - 0.5)


def _fill_spans(draw: ImageDraw.ImageDraw, row: int, xs: list[float], width: int) -> None:
    xs.sort()
    for a, b in zip(xs[0::2], xs[1::2]):
        left, right = max(_first_centre(a), 0), min(_first_centre(b), width)
        if right > left:
            draw.line([(left, row), (right - 1, row)], fill=255)


def render(shapes: list[Shape], width: int, height: int) -> Image.Image:
    """A mode-L mask of ``width`` x ``height``: 255 where a pixel centre lies in any shape, else 0."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for shape in shapes:
        if shape.shape == "rect":
            left, top, right, bottom = shape.pixels(width, height)
            if right > left and bottom > top:
                draw.rectangle([left, top, right - 1, bottom - 1], fill=255)
        elif shape.shape == "ellipse" and shape.box is not None:
            shape.pixels(width, height)  # rejects an empty box
            x0, y0, x1, y1 = (shape.box[0] * width, shape.box[1] * height, shape.box[2] * width, shape.box[3] * height)
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            for row in range(max(_first_centre(y0), 0), min(_first_centre(y1), height)):
                dy = (row + 0.5 - cy) / ry
                if dy * dy <= 1.0:
                    half = rx * math.sqrt(1.0 - dy * dy)
                    _fill_spans(draw, row, [cx - half, cx + half], width)
        elif shape.points is not None:
            pts = [(x * width, y * height) for x, y in shape.points]
            ys = [p[1] for p in pts]
            for row in range(max(_first_centre(min(ys)), 0), min(_first_centre(max(ys)), height)):
                yc = row + 0.5
                xs = []  # even-odd rule: crossings of the centre line, half-open at vertices
                for (xa, ya), (xb, yb) in zip(pts, pts[1:] + pts[:1]):
                    if (ya <= yc < yb) or (yb <= yc < ya):
                        xs.append(xa + (yc - ya) * (xb - xa) / (yb - ya))
                _fill_spans(draw, row, xs, width)
    return mask


def decode_upload(data: str, width: int, height: int) -> Image.Image:
    """A caller's mask (base64 or data URL; white = repaint) as a binary mode-L mask of the given size."""
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    if len(payload) * 3 // 4 > MAX_MASK_BYTES:
        raise InvalidInput(f"mask is larger than {MAX_MASK_BYTES // (1024 * 1024)} MiB")
    try:
        raw = base64.b64decode(payload, validate=False)
        img = Image.open(io.BytesIO(raw))  # reads the header only: the size is checked before decoding
        if img.width * img.height > MAX_MASK_PIXELS:
            raise InvalidInput(f"mask is {img.width}x{img.height}; at most {MAX_MASK_PIXELS:,} pixels",
                               next_step="Send a mask the size of the image, or use region=.")
        img.load()
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"mask is not a base64 image ({type(exc).__name__})",
                           next_step="Send a PNG or JPEG as base64 or a data: URL, or use region=.") from None
    if img.mode in ("RGBA", "LA") or "transparency" in img.info:
        # Transparent pixels are "not drawn": flatten onto black so only painted white repaints.
        flat = Image.new("RGBA", img.size, (0, 0, 0, 255))
        flat.alpha_composite(img.convert("RGBA"))
        img = flat
    gray = img.convert("L")
    if gray.size != (width, height):
        gray = gray.resize((width, height), Image.Resampling.BILINEAR)
    return gray.point(lambda v: 255 if v >= 128 else 0)


def encode(mask: Image.Image) -> str:
    """Base64 grayscale JPEG, no ``data:`` prefix; quality high enough that thresholding at 128 is exact."""
    buf = io.BytesIO()
    mask.convert("L").save(buf, format="JPEG", quality=95)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def coverage(mask: Image.Image) -> float:
    """Fraction of the image to be repainted."""
    hist = mask.histogram()
    return sum(hist[128:]) / (mask.width * mask.height)
