"""Image sizes: the grid size an aspect ratio gets, and the quadrant boxes of a grid.

Upstream's examples: a 1:1 grid is 1024x1024 (raw 2048x2048) and a 16:9 one 1456x816 (raw
2912x1632); other ratios get about the same area in multiples of 16, as Midjourney does.
"""

from __future__ import annotations

import math
import re

Size = tuple[int, int]
Box = tuple[int, int, int, int]

_KNOWN: dict[tuple[int, int], Size] = {(1, 1): (1024, 1024), (16, 9): (1456, 816), (9, 16): (816, 1456)}
_AR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
MAX_RATIO = 4.0  # wider ratios are clamped


def parse_ar(value: str | None) -> tuple[int, int] | None:
    """``"16:9"`` -> (16, 9) reduced; None for a missing or unreadable ratio."""
    m = _AR.match(value or "")
    if not m:
        return None
    w, h = float(m.group(1)), float(m.group(2))
    if w <= 0 or h <= 0:
        return None
    scale = 1
    while (w * scale != int(w * scale) or h * scale != int(h * scale)) and scale < 1000:
        scale *= 10
    a, b = int(w * scale), int(h * scale)
    g = math.gcd(a, b)
    return a // g, b // g


def _round16(x: float) -> int:
    return max(16, round(x / 16.0) * 16)


def grid_size(ar: tuple[int, int] | None) -> Size:
    """The thumbnail size of a grid with aspect ``ar`` (raw is twice it)."""
    ar = ar or (1, 1)
    r = min(max(ar[0] / ar[1], 1 / MAX_RATIO), MAX_RATIO)
    for (a, b), size in _KNOWN.items():  # 2912x1632 is "16:9" too, though not exactly
        if abs(r / (a / b) - 1) < 0.02:
            return size
    area = 1024 * 1024
    return _round16(math.sqrt(area * r)), _round16(math.sqrt(area / r))


def ratio_of(size: Size) -> tuple[int, int]:
    g = math.gcd(*size)
    return size[0] // g, size[1] // g


def plain_ratio(size: Size, largest: int = 32) -> tuple[int, int]:
    """The ratio a person would write for ``size``: the W:H with the smallest terms up to ``largest``
    within 0.5% of it (1456x816 -> 16:9, not 91:51); else the exact reduced ratio."""
    exact = size[0] / size[1]
    for b in range(1, largest + 1):
        a = round(exact * b)
        if 1 <= a <= largest and abs(a / b / exact - 1) < 0.005:
            return a, b
    return ratio_of(size)


def double(size: Size) -> Size:
    return size[0] * 2, size[1] * 2


def half(size: Size) -> Size:
    return max(1, size[0] // 2), max(1, size[1] // 2)


def scale(size: Size, factor: float) -> Size:
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def quadrant_box(size: Size, n: int) -> Box:
    """Pixel box of quadrant ``n`` (1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right)."""
    w2, h2 = size[0] // 2, size[1] // 2
    x, y = ((n - 1) % 2) * w2, ((n - 1) // 2) * h2
    return x, y, x + w2, y + h2


def fit_long_side(size: Size, long_side: int) -> Size:
    """``size`` scaled so its longer side is ``long_side``."""
    f = long_side / max(size)
    return max(1, round(size[0] * f)), max(1, round(size[1] * f))
