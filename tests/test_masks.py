"""Mask pixels for rect, ellipse and polygon, checked against a brute-force pixel-centre test."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from mj_mcp.core import masks
from mj_mcp.errors import InvalidInput

SHAPES = TypeAdapter(list[masks.Shape])


def inside(shape: dict, x: float, y: float) -> bool:
    """Independent point-in-shape test on fractional coordinates (the definition, not the renderer)."""
    if shape["shape"] == "rect":
        x0, y0, x1, y1 = shape["box"]
        return x0 <= x < x1 and y0 <= y < y1
    if shape["shape"] == "ellipse":
        x0, y0, x1, y1 = shape["box"]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    pts, hit = shape["points"], False  # even-odd ray casting
    for (xa, ya), (xb, yb) in zip(pts, pts[1:] + pts[:1], strict=True):
        if ((ya <= y < yb) or (yb <= y < ya)) and x < xa + (y - ya) * (xb - xa) / (yb - ya):
            hit = not hit
    return hit


def expected(shapes: list[dict], w: int, h: int) -> list[int]:
    return [
        255 if any(inside(s, (i + 0.5) / w, (j + 0.5) / h) for s in shapes) else 0 for j in range(h) for i in range(w)
    ]


@pytest.mark.parametrize(
    "shapes",
    [
        [{"shape": "rect", "box": [0.1, 0.2, 0.55, 0.9]}],
        [{"shape": "rect", "box": [0.0, 0.0, 1.0, 1.0]}],
        [{"shape": "ellipse", "box": [0.2, 0.1, 0.9, 0.6]}],
        [{"shape": "ellipse", "box": [0.0, 0.0, 1.0, 1.0]}],
        [{"shape": "polygon", "points": [[0.1, 0.9], [0.5, 0.05], [0.95, 0.8]]}],
        [{"shape": "polygon", "points": [[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]]}],  # self-crossing bow tie
        [{"shape": "rect", "box": [0.0, 0.0, 0.3, 0.3]}, {"shape": "ellipse", "box": [0.5, 0.5, 1.0, 1.0]}],
    ],
)
@pytest.mark.parametrize("size", [(97, 61), (128, 128)])
def test_mask_pixels_are_exactly_the_pixel_centres_inside(shapes, size):
    w, h = size
    mask = masks.render(SHAPES.validate_python(shapes), w, h)
    assert mask.mode == "L" and mask.size == size
    got = list(mask.tobytes())
    assert got == expected(shapes, w, h)
    assert 0 < sum(1 for v in got if v) <= w * h


def test_the_encoded_mask_is_a_grayscale_jpeg_that_thresholds_back_exactly():
    shapes = SHAPES.validate_python(
        [
            {"shape": "polygon", "points": [[0.1, 0.9], [0.5, 0.05], [0.95, 0.8]]},
            {"shape": "ellipse", "box": [0.6, 0.1, 0.95, 0.4]},
        ]
    )
    mask = masks.render(shapes, 2048, 1632)
    data = masks.encode(mask)
    assert not data.startswith("data:") and data.startswith("/9j/")  # base64 of a JPEG, as in the guide
    back = Image.open(io.BytesIO(base64.b64decode(data)))
    assert back.format == "JPEG" and back.mode == "L" and back.size == (2048, 1632)
    assert back.point(lambda v: 255 if v >= 128 else 0).tobytes() == mask.tobytes()


@pytest.mark.parametrize(
    "bad",
    [
        {"shape": "rect", "box": [0.1, 0.1, 1.2, 0.5]},
        {"shape": "rect", "box": [-0.1, 0.1, 0.2, 0.5]},
        {"shape": "polygon", "points": [[0.1, 0.1], [0.2, 0.2]]},
        {"shape": "polygon", "points": [[0.1, 0.1]] * (masks.MAX_POLYGON_POINTS + 1)},
        {"shape": "star", "box": [0, 0, 1, 1]},
    ],
)
def test_shapes_outside_the_rules_do_not_validate(bad):
    with pytest.raises(ValidationError):
        SHAPES.validate_python([bad])


def test_an_empty_box_is_refused():
    with pytest.raises(InvalidInput, match="empty"):
        masks.render(SHAPES.validate_python([{"shape": "ellipse", "box": [0.5, 0.5, 0.5, 0.9]}]), 64, 64)


def test_an_uploaded_mask_is_resized_and_binarised_and_transparency_means_keep():
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # transparent everywhere...
    rgba.paste((255, 255, 255, 255), (0, 0, 10, 20))  # ...but a painted white quarter on the left
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    mask = masks.decode_upload(base64.b64encode(buf.getvalue()).decode(), 400, 200)
    assert mask.size == (400, 200) and set(mask.tobytes()) == {0, 255}
    assert mask.getbbox() == (0, 0, 100, 200)
    with pytest.raises(InvalidInput, match="not a base64 image"):
        masks.decode_upload("bm90IGFuIGltYWdl", 10, 10)
