"""A record's media: its full-size bytes (from the on-disk cache, else downloaded once and cached), and
the pictures made of them (a thumbnail for the model, a display rendition for the MCP App).

Everything that shows or keeps a picture (result previews, ``mj://images/{name}`` reads, exports, the
App's view) goes through ``Media``, so a picture is downloaded at most once and keeps working after its
CDN URL has expired. The pictures made of it live in one in-memory cache, bounded in bytes, and are
decoded under one limiter: a poll or a second look costs no decode, and a burst of finishing jobs does
not decode gigabytes at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from ..core.kinds import Kind
from ..errors import DamagedCopy, FetchFailed, ImageUnavailable
from ..records import Medium, Record
from ..upstream import Upstream
from . import previews
from .cache import ImageCache, key_for

# A preview is a nicety: never hold a finished result longer than this.
PREVIEW_BUDGET_S = 15.0
# A resource read or an export wants the image.
FETCH_BUDGET_S = 120.0
# Pictures remembered: a 512 px thumbnail is 20-30 KB, a 1024 px rendition 100-200 KB.
PICTURES_KEPT_BYTES = 24 << 20
# Decoding a 2048 px PNG takes ~12 MB for a moment: two at a time (the cores we expect) keeps 200
# finishing jobs from holding gigabytes, and the C allocator from keeping it after.
DECODES_AT_ONCE = 2
REMAKE = "Make it again: the same action on its parent, or imagine with its prompt."

Load = Callable[[], Awaitable[tuple[bytes, str]]]


@dataclass
class Preview:
    jpeg: bytes | None = None
    # The full image's type, when it was looked at.
    mime: str | None = None
    # One line when the thumbnail was left out for a reason worth saying.
    note: str | None = None


class Media:
    def __init__(self, upstream: Upstream, cache: ImageCache, *, preview_px: int | None) -> None:
        self.upstream = upstream
        self.cache = cache
        self.preview_px = preview_px
        # Image ids are unique within one upstream: the API's base URL, or the embedded simulator's
        # fixed origin (its base URL has a new port at every start; its archive keeps the ids).
        self._namespace = upstream.api_alias or upstream.settings.base_url
        self._decoders = anyio.CapacityLimiter(DECODES_AT_ONCE)
        # (key, long side, labelled) -> (JPEG, the source's MIME type), the least recently used first.
        self._pictures: OrderedDict[tuple[str, int, bool], tuple[bytes, str]] = OrderedDict()

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
        # Deleted: fetch it again while the URL works.
        except DamagedCopy as exc:
            hit, damaged = None, exc.message
        if hit is not None:
            return hit
        try:
            data, ctype = await self.upstream.fetch_image(url, timeout=budget)
        except FetchFailed as exc:
            if damaged:
                raise ImageUnavailable(
                    f"the image {record.name} is gone: its cached copy was {damaged}, and its URL no "
                    f"longer serves it ({exc.message})",
                    next_step=REMAKE,
                ) from None
            raise ImageUnavailable(f"download failed ({exc.message})") from None
        mime = previews.sniff_mime(data)
        if mime is None:
            raise ImageUnavailable(f"download is not an image ({(ctype or 'no type').split(';')[0]})")
        await self.cache.put(key, data, mime)
        return data, mime

    async def fetch(self, url: str, *, timeout: float, upstream: Upstream | None = None) -> tuple[bytes, str]:
        """A picture that is not kept (a running job's partial one, destroyed when the job ends), fetched
        with ``upstream``'s token where it goes to the API's own origin (a workspace's own)."""
        data, ctype = await (upstream or self.upstream).fetch_image(url, timeout=timeout)
        return data, ctype or ""

    async def preview(self, record: Record) -> Preview:
        """Keep a finished image (download it into the cache now, while its URL works) and make its
        thumbnail, a grid's quadrants labelled; nothing for running or failed records, or records that
        are not one picture. With previews off nothing is downloaded here: resource reads and exports
        fetch (and cache) the image when they need it."""
        if not record.is_image or not record.media or self.preview_px is None:
            return Preview()
        grid = record.kind == Kind.GRID
        try:
            with anyio.fail_after(PREVIEW_BUDGET_S):
                jpeg, mime = await self._picture(
                    self._key(record.media[0]),
                    self.preview_px,
                    grid,
                    lambda: self.original(record, budget=PREVIEW_BUDGET_S),
                )
        # UnreadableImage too: the bytes are there, they do not decode. One line: the next step is the result's own.
        except ImageUnavailable as exc:
            return Preview(note=f"preview unavailable: {exc.message}")
        except TimeoutError:
            return Preview(note=f"preview unavailable: no image within {PREVIEW_BUDGET_S:g} s")
        return Preview(jpeg=jpeg, mime=mime)

    async def rendition(self, key: str, px: int, load: Load) -> bytes:
        """A JPEG of what ``load`` gives, its long side at most ``px``, remembered under ``key``."""
        jpeg, _ = await self._picture(key, px, False, load)
        return jpeg

    async def _picture(self, key: str, px: int, grid: bool, load: Load) -> tuple[bytes, str]:
        """The one cache of pictures and the one decode limiter."""
        slot = (key, px, grid)
        made = self._pictures.get(slot)
        if made is not None:
            self._pictures.move_to_end(slot)
            return made
        data, mime = await load()
        jpeg = await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=grid), limiter=self._decoders)
        self._pictures[slot] = (jpeg, mime)
        while sum(len(j) for j, _ in self._pictures.values()) > PICTURES_KEPT_BYTES and len(self._pictures) > 1:
            self._pictures.popitem(last=False)
        return jpeg, mime
