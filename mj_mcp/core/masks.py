"""Regions and masks for ``variation_region``: shapes in fractions of the image to a mask image.

Upstream wants a grayscale image of exactly the source's raw size, white = repaint, as base64 JPEG
without a ``data:`` prefix (the guide's example). A pixel is inside a shape when its centre is:
that rule is exact and easy to check, where anti-aliased drawing would blur the edge. Rectangles are
drawn by Pillow; ellipses and polygons are filled span by span with the same centre rule.

Small inputs can cost a lot here: a 243 KiB PNG of 7999 x 8000 decodes to a gigabyte, sixteen
64-point polygons cross two million pixel rows. So ``build`` (the one entry point; synchronous and
CPU-bound, for a worker thread) refuses a mask far larger than the image from its header, decodes
an upload in its cheapest mode, and fills polygons a row of bytes at a time.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, model_validator

from ..errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

MAX_POLYGON_POINTS = 64
MAX_MASK_BYTES = 8 * 1024 * 1024
MAX_MASK_PIXELS = 64_000_000  # more than any Midjourney image (4096 x 4096 = 16.8 M)
MAX_SHAPES = 16
MAX_SCALE = 2  # an upload may be at most this many times the image's size in either direction
MAX_SIDE = 8192  # the largest image side a mask is made for (Midjourney's largest is 4096)
# Drawing regions costs about a microsecond a unit (see cost()): 400k allows sixteen ellipses the
# size of a 2048 px image, or two 64-point polygons whose every edge spans it.
MAX_COST = 400_000

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = Annotated[list[Fraction], Field(min_length=2, max_length=2)]


# One region in fractions of the image: a rect or an ellipse by its box, a polygon by its points.
# One flat model rather than a union of three: the schema the model reads on every turn is a third of
# the size, and the check that the right field is given is one validator. (No docstring: it would be
# published as the schema's description.)
class Shape(BaseModel):
    shape: Literal["rect", "ellipse", "polygon"]
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4, description="x0,y0,x1,y1")] | None = None
    points: (
        Annotated[list[Point], Field(min_length=3, max_length=MAX_POLYGON_POINTS, description="[[x,y],...]")] | None
    ) = None

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
        return (
            _first_centre(x0 * width),
            _first_centre(y0 * height),
            _first_centre(x1 * width),
            _first_centre(y1 * height),
        )


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value  # a lone shape is a list of one


# What a tool publishes for a region, read by the model on every turn of every tool that takes one
# (inpaint_region, and an edit of any picture): the shapes and their fields, without the per-number
# bounds the validation above enforces (fractions 0-1; a tool's description of the parameter says so).
# About 300 characters, where the full schema of the model is 600.
REGION_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_SHAPES,
    "items": {
        "type": "object",
        "required": ["shape"],
        "properties": {
            "shape": {"type": "string", "enum": ["rect", "ellipse", "polygon"]},
            "box": {"type": "array", "description": "x0,y0,x1,y1"},
            "points": {"type": "array", "description": "[[x,y],...] 3-64"},
        },
    },
}

Region = Annotated[
    list[Shape],
    BeforeValidator(_one_or_many),
    Field(min_length=1, max_length=MAX_SHAPES),
    WithJsonSchema(REGION_SCHEMA),
]


def _first_centre(edge: float) -> int:
    """Index of the first pixel whose centre (i + 0.5) lies at or beyond ``edge``."""
    return math.ceil(edge - 0.5)


def render(shapes: list[Shape], width: int, height: int) -> Image.Image:
    """A mode-L mask of ``width`` x ``height``: 255 where a pixel centre lies in any shape, else 0.
    Refuses shapes whose drawing would cost more than ``MAX_COST`` (sixteen 64-point polygons
    spanning a 2048 px image would take seconds of CPU)."""
    if (work := cost(shapes, width, height)) > MAX_COST:
        raise InvalidInput(
            f"the region is too detailed to draw at {width}x{height} ({work:,} units of work; at most {MAX_COST:,})",
            next_step="Use fewer shapes or fewer polygon points, or send mask=.",
        )
    # Pillow when a mask is made, not at start-up (issue 21: start-up is the SDK's).
    from PIL import Image, ImageDraw

    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for shape in shapes:
        if shape.shape == "rect":
            left, top, right, bottom = shape.pixels(width, height)
            if right > left and bottom > top:
                draw.rectangle([left, top, right - 1, bottom - 1], fill=255)
        elif shape.shape == "ellipse":
            shape.pixels(width, height)  # rejects an empty box
            _fill(mask, *_ellipse_crossings(shape, width, height))
        elif shape.points is not None:
            _fill(mask, *_polygon_crossings([(x * width, y * height) for x, y in shape.points], width, height))
    return mask


def _ellipse_crossings(shape: Shape, width: int, height: int) -> tuple[int, list[Sequence[int]]]:
    """(first row, each row's crossing columns) of the ellipse inscribed in the shape's box."""
    assert shape.box is not None
    x0, y0, x1, y1 = (shape.box[0] * width, shape.box[1] * height, shape.box[2] * width, shape.box[3] * height)
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    top = max(_first_centre(y0), 0)
    rows: list[Sequence[int]] = []
    for row in range(top, min(_first_centre(y1), height)):
        dy = (row + 0.5 - cy) / ry
        half = rx * math.sqrt(1.0 - dy * dy) if dy * dy <= 1.0 else None
        rows.append(() if half is None else (_first_centre(cx - half), _first_centre(cx + half)))
    return top, rows


def _polygon_crossings(pts: list[tuple[float, float]], width: int, height: int) -> tuple[int, list[Sequence[int]]]:
    """(first row, each row's crossing columns) of a polygon in pixels: where each edge crosses a
    row's centre line, half-open at vertices, as the first pixel centre at or right of it. Rows an
    edge does not cross get ``width`` from it, which pairs off past the right edge."""
    ys = [p[1] for p in pts]
    top, bottom = max(_first_centre(min(ys)), 0), min(_first_centre(max(ys)), height)
    edges = []
    ceil = math.ceil
    for (xa, ya), (xb, yb) in zip(pts, pts[1:] + pts[:1], strict=True):
        if ya == yb:
            continue  # a horizontal edge crosses no centre line
        first, last = max(_first_centre(min(ya, yb)), top), min(_first_centre(max(ya, yb)), bottom)
        dx, dy = xb - xa, yb - ya
        # _first_centre of each crossing, written out: one comprehension an edge, not a call a row.
        columns = [ceil(xa + (r + 0.5 - ya) * dx / dy - 0.5) for r in range(first, last)]
        edges.append([width] * (first - top) + columns + [width] * (bottom - max(last, top)))
    return top, list(zip(*edges, strict=False)) if edges and bottom > top else []


def cost(shapes: list[Shape], width: int, height: int) -> int:
    """What rasterising these shapes costs, in units of about a microsecond of CPU: a crossing of
    an edge with a pixel row, and eight a row (the per-row work of building its spans)."""
    total = 0
    for shape in shapes:
        if shape.shape == "ellipse" and shape.box is not None:
            total += 10 * (_first_centre(shape.box[3] * height) - _first_centre(shape.box[1] * height))
        elif shape.points is not None:
            ys = [y * height for _, y in shape.points]
            total += 8 * (_first_centre(max(ys)) - _first_centre(min(ys)))
            total += sum(abs(_first_centre(a) - _first_centre(b)) for a, b in zip(ys, ys[1:] + ys[:1], strict=True))
    return total


def _fill(mask: Image.Image, top: int, rows: list[Sequence[int]]) -> None:
    """Set, in ``mask`` from row ``top`` down, the pixels between each row's crossing columns taken
    in pairs (the even-odd rule); pixels already set stay set (shapes are a union).

    The spans are copied into one band of bytes, pasted once. A Pillow call per span, and a test
    of every edge on every row, took 3.7 s of CPU for sixteen 64-point polygons at 2048 px.
    """
    width = mask.width
    ones = memoryview(b"\xff" * width)
    band = bytearray(len(rows) * width)
    base = 0
    for row in rows:
        if len(row) == 2:  # an ellipse's row, or a convex polygon's: one span
            left, right = row
            if left > right:
                left, right = right, left
            if right > left:
                band[base + left : base + right] = ones[: right - left]
        else:
            columns = sorted(row)
            for left, right in zip(columns[0::2], columns[1::2], strict=False):
                if right > left:
                    band[base + left : base + right] = ones[: right - left]
        base += width
    if rows:
        # Pillow when a mask is made, not at start-up (issue 21: start-up is the SDK's).
        from PIL import Image

        mask.paste(255, (0, top), Image.frombytes("L", (width, len(rows)), bytes(band)))


def decode_upload(data: str, width: int, height: int) -> Image.Image:
    """A caller's mask (base64 or data URL; white = repaint) as a binary mode-L mask of the given size.

    The header is read first: a mask over ``MAX_MASK_PIXELS`` or more than ``MAX_SCALE`` times the
    image in either direction is refused before a pixel is decoded. Then only what the mask means
    is kept: luminance, and where there is transparency, luminance times alpha (transparent is
    "not drawn"), one byte a pixel each; a JPEG decodes in grayscale at a reduced scale.
    """
    # Pillow when a mask is made, not at start-up (issue 21: start-up is the SDK's).
    from PIL import Image, ImageChops

    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    if len(payload) * 3 // 4 > MAX_MASK_BYTES:
        raise InvalidInput(f"mask is larger than {MAX_MASK_BYTES // (1024 * 1024)} MiB")
    try:
        raw = base64.b64decode(payload, validate=False)
        img = Image.open(io.BytesIO(raw))  # reads the header only: the size is checked before decoding
        if img.width * img.height > MAX_MASK_PIXELS:
            raise InvalidInput(
                f"mask is {img.width}x{img.height}; at most {MAX_MASK_PIXELS:,} pixels",
                next_step="Send a mask the size of the image, or use region=.",
            )
        if img.width > MAX_SCALE * width or img.height > MAX_SCALE * height:
            raise InvalidInput(
                f"mask is {img.width}x{img.height}, far larger than the image ({width}x{height})",
                next_step=f"Send the mask at the image's size, {width}x{height}, or use region=.",
            )
        img.draft("L", (width, height))  # JPEG: decode grey, at the smallest scale still >= the image
        img.load()
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
            # Transparent pixels are "not drawn": luminance times alpha is the picture on black.
            alpha = img.getchannel("A") if "A" in img.getbands() else img.convert("LA").getchannel("A")
            gray = ImageChops.multiply(img.convert("L"), alpha)
            del alpha
        else:
            gray = img.convert("L") if img.mode != "L" else img
        if gray is not img:
            img.close()  # the decoded original goes now, before the resize allocates
    except InvalidInput:
        raise
    except Exception as exc:  # Pillow's errors are a zoo: OSError, SyntaxError, struct.error, bombs...
        raise InvalidInput(
            f"mask is not a base64 image ({type(exc).__name__})",
            next_step="Send a PNG or JPEG as base64 or a data: URL, or use region=.",
        ) from None
    if gray.size != (width, height):
        gray = gray.resize((width, height), Image.Resampling.BILINEAR)
    return gray.point(lambda v: 255 if v >= 128 else 0)


def build(*, region: list[Shape] | None = None, mask: str | None = None, width: int, height: int) -> tuple[str, float]:
    """The mask upstream gets (base64 JPEG) and the fraction of the image it repaints, from exactly
    one of ``region`` and ``mask``, for an image of ``width`` x ``height`` (its raw size).

    Synchronous and CPU-bound (tens to hundreds of milliseconds at 2048 px): run it in a worker
    thread. Raises ``InvalidInput`` for anything that would make no mask or an empty one.
    """
    if (region is None) == (mask is None):
        raise InvalidInput("give exactly one of region and mask")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise InvalidInput(
            f"the image's size ({width}x{height}) is beyond what a mask is made for (at most {MAX_SIDE} a side)"
        )
    picture = decode_upload(mask, width, height) if mask is not None else render(region or [], width, height)
    covered = coverage(picture)
    if covered == 0:
        raise InvalidInput("the region covers no pixel of the image", next_step="Use a larger region.")
    return encode(picture), covered


def encode(mask: Image.Image) -> str:
    """Base64 grayscale JPEG, no ``data:`` prefix; quality high enough that thresholding at 128 is exact."""
    buf = io.BytesIO()
    mask.convert("L").save(buf, format="JPEG", quality=95)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def coverage(mask: Image.Image) -> float:
    """Fraction of the image to be repainted."""
    hist = mask.histogram()
    return sum(hist[128:]) / (mask.width * mask.height)
