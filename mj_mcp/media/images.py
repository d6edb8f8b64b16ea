"""A record's image: its full-size bytes (from the cache, else downloaded once and cached), its
thumbnail, and its resource URI.

Everything that shows or keeps an image (result previews, ``mj://images/{name}`` reads,
``export_image``) goes through here, so a picture is downloaded at most once and keeps working
after its CDN URL has expired.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import anyio

from ..core.actions import Kind
from ..errors import DamagedCopy, FetchFailed, ImageUnavailable
from ..records import Medium, Record
from ..upstream import Upstream
from . import previews
from .cache import ImageCache, key_for

URI_TEMPLATE = "mj://images/{name}"
PREVIEW_BUDGET_S = 15.0  # a preview is a nicety: never hold a finished result longer than this
FETCH_BUDGET_S = 120.0  # a resource read or an export wants the image
THUMBNAILS_KEPT = 128
REMAKE = "Make it again: the same action on its parent, or imagine with its prompt."


def uri_for(name: str) -> str:
    return URI_TEMPLATE.format(name=name)


@dataclass
class Preview:
    jpeg: bytes | None = None
    mime: str | None = None  # the full image's type, when it was looked at
    note: str | None = None  # one line when the thumbnail was left out for a reason worth saying


class ImageStore:
    def __init__(self, upstream: Upstream, cache: ImageCache, *, preview_px: int | None) -> None:
        self.upstream = upstream
        self.cache = cache
        self.preview_px = preview_px
        self._namespace = upstream.settings.base_url
        # Decoding a 2048 px PNG takes ~12 MB for a moment: two at a time (the cores we expect) keeps
        # 200 finishing generations from holding gigabytes, and the C allocator from keeping it after.
        self._decoders = anyio.CapacityLimiter(2)
        # The last thumbnails made (~20-30 KB each): get_task on a finished image shows it again, and
        # decoding the full image each time would cost ~80 ms of CPU per call.
        self._thumbnails: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def _key(self, medium: Medium) -> str:
        return key_for(self._namespace, medium.key, medium.url)

    async def original(self, record: Record, *, budget: float = FETCH_BUDGET_S) -> tuple[bytes, str]:
        """The full-size image and its MIME type."""
        if not record.is_image or not record.media:
            raise ImageUnavailable(f"{record.name} is {record.status}, with no image yet")
        medium = record.media[0]
        url, key = medium.url, self._key(medium)
        damaged = None
        try:
            hit = await self.cache.get(key)
        except DamagedCopy as exc:  # deleted: fetch it again while the URL works
            hit, damaged = None, exc.message
        if hit is not None:
            return hit
        try:
            data, ctype = await self.upstream.fetch_image(url, timeout=budget)
        except FetchFailed as exc:
            if damaged:
                raise ImageUnavailable(
                    f"the image {record.name} is gone: its cached copy was {damaged}, and its URL no "
                    f"longer serves it ({exc.message})", next_step=REMAKE) from None
            raise ImageUnavailable(f"download failed ({exc.message})") from None
        mime = previews.sniff_mime(data)
        if mime is None:
            raise ImageUnavailable(f"download is not an image ({(ctype or 'no type').split(';')[0]})")
        await self.cache.put(key, data, mime)
        return data, mime

    async def preview(self, record: Record) -> Preview:
        """Keep a finished image (download it into the cache now, while its URL works) and make its
        thumbnail; nothing for running or failed records. With previews off nothing is downloaded
        here: resource reads and exports fetch (and cache) the image when they need it."""
        if not record.is_image or not record.media or self.preview_px is None:
            return Preview()
        key = self._key(record.media[0])
        if key in self._thumbnails:
            self._thumbnails.move_to_end(key)
            jpeg, mime = self._thumbnails[key]
            return Preview(jpeg=jpeg, mime=mime)
        why = None
        try:
            with anyio.fail_after(PREVIEW_BUDGET_S):
                data, mime = await self.original(record, budget=PREVIEW_BUDGET_S)
            px, grid = self.preview_px, record.kind == Kind.GRID
            jpeg = await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=grid),
                                                  limiter=self._decoders)
        except ImageUnavailable as exc:  # UnreadableImage too: the bytes are there, they do not decode
            why = exc.message  # one line: the next step is the result's own
        except TimeoutError:
            why = f"no image within {PREVIEW_BUDGET_S:g} s"
        if why is not None:
            return Preview(note=f"preview unavailable: {why}")
        self._thumbnails[key] = (jpeg, mime)
        while len(self._thumbnails) > THUMBNAILS_KEPT:
            self._thumbnails.popitem(last=False)
        return Preview(jpeg=jpeg, mime=mime)
