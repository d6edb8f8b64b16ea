"""The view's pictures: a display-size JPEG of a finished image, or of the partial picture upstream
streams while a job runs (its blurry 35% and 75% images).

A host's CSP blocks the CDN's URLs, so the view gets its pixels through the app-only ``view_image``
tool as image content. A finished image comes from the image store (cached on disk, downloaded at
most once); a partial one is fetched from its short-lived URL. The last renditions made are kept,
so the view's polling and a gallery's thumbnails cost one decode each.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import anyio
from PIL import UnidentifiedImageError

from ..errors import FetchFailed, ImageUnavailable
from ..media import previews
from ..media.images import ImageStore
from ..registry import ImageRecord

Shown = Literal["final", "intermediate"]
KEPT = 64  # renditions remembered: a 1024 px JPEG is ~100-200 KB, so a few MB at most
FETCH_S = 10.0  # a partial picture is a nicety: never hold a poll longer than this
QUALITY_PX = (64, 2048)


class Pictures:
    def __init__(self, images: ImageStore) -> None:
        self.images = images
        self._made: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._decoders = anyio.CapacityLimiter(2)  # as for thumbnails: two decodes at a time

    async def show(self, record: ImageRecord, max_px: int, partial_url: str | None) -> tuple[bytes | None, Shown | None]:
        """(JPEG, what it is) for ``record`` at most ``max_px`` on its long side; (None, None) when
        there is nothing to show yet (or it cannot be had: the view keeps what it shows)."""
        px = min(max(max_px, QUALITY_PX[0]), QUALITY_PX[1])
        try:
            if record.status == "completed":
                key = (f"final:{record.image_id}:{record.raw_image_url or record.image_url}", px)
                jpeg = await self._rendition(key, lambda: self.images.original(record), grid=False)
                return jpeg, "final"
            if record.status == "running" and partial_url:
                jpeg = await self._rendition((f"partial:{partial_url}", px), lambda: self._fetch(partial_url), grid=False)
                return jpeg, "intermediate"
        except (ImageUnavailable, FetchFailed, TimeoutError, UnidentifiedImageError, OSError, ValueError):
            pass
        return None, None

    async def _fetch(self, url: str) -> tuple[bytes, str]:
        data, ctype = await self.images.upstream.fetch_image(url, timeout=FETCH_S)
        return data, ctype or ""

    async def _rendition(self, key: tuple[str, int], load, *, grid: bool) -> bytes:
        if key in self._made:
            self._made.move_to_end(key)
            return self._made[key]
        data, _ = await load()
        px = key[1]
        jpeg = await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=grid), limiter=self._decoders)
        self._made[key] = jpeg
        while len(self._made) > KEPT:
            self._made.popitem(last=False)
        return jpeg
