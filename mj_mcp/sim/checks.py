"""What upstream refuses before a task exists (docs/upstream.md, "Prompts" and "Actions"): flags it does not know, and
masks that are not an image of the source's raw size.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from PIL import Image

from ..core import prompt
from .bodies import SimError
from .knobs import SimConfig
from .records import SimImage

_DASHES = "-\u2012\u2013\u2014\u2015\u2212"
_URL = re.compile(r"^https?://", re.IGNORECASE)


def unrecognized(text: str, parsed: prompt.Parsed) -> list[str]:
    """The tokens upstream would list in "Unrecognized argument(s)": bad flags and their values."""
    bad = set(parsed.unknown) | set(parsed.stray)
    if not bad:
        return []
    out, collecting = [], False
    for tok in text.split()[len(parsed.urls) :]:
        if tok in bad:
            out.append(tok)
            collecting = True
        elif tok[:1] in _DASHES:
            collecting = False
        elif collecting:
            out.append(tok)
    return out


def check_mask(cfg: SimConfig, mask: Any, source: SimImage | None) -> bytes | str:
    """A mask URL as is, or the decoded image bytes; in strict mode exactly the source's raw size."""
    if not isinstance(mask, str) or not mask.strip():
        raise SimError("bad_request", "mask is required for variation_region")
    mask = mask.strip()
    if _URL.match(mask):
        return str(mask)
    if mask.startswith("data:"):
        if cfg.strict_mask:
            raise SimError("bad_request", "mask must be bare base64 image data, without a data: URL prefix")
        mask = mask.partition(",")[2]
    compact = "".join(mask.split())
    try:
        data = base64.b64decode(compact, validate=cfg.strict_mask)
    except (binascii.Error, ValueError):
        raise SimError("bad_request", "mask is not valid base64") from None
    if not cfg.strict_mask:
        return data
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "WEBP")) as img:
            size = img.size
    except Exception:
        raise SimError("bad_request", "mask is not a decodable image (base64 of a grayscale JPEG or PNG)") from None
    if source is not None and size != source.raw:
        raise SimError(
            "bad_request",
            f"mask is {size[0]}x{size[1]} but must be the source image's raw size {source.raw[0]}x{source.raw[1]}",
        )
    return data
