"""A record's media: its full-size bytes (from the on-disk cache, else downloaded once and cached), and
the pictures made of them (a thumbnail for the model, a display rendition for the MCP App; for an edit,
one sheet of its four results as a 2x2 grid, each result downloaded into the cache at once). And the
size of a picture that is no record's (an https URL to edit), read from its header.

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
# A picture's size from its header: its first bytes (PNG, WebP and GIF say it in 30; a JPEG after its
# metadata, which may hold a thumbnail and a colour profile of tens of KB each), within this time.
HEADER_BYTES = 256 << 10
HEADER_BUDGET_S = 20.0
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
        return await self._original(record.name, record.media[0], budget)

    async def originals(self, record: Record, *, budget: float = FETCH_BUDGET_S) -> list[tuple[bytes, str]]:
        """Every picture a record holds (an edit's four results), full size, downloaded side by side."""
        media = [m for m in record.media if m.mime.startswith("image/")]
        got: list[tuple[bytes, str]] = [(b"", "")] * len(media)
        missing: list[ImageUnavailable] = []

        async def one(n: int) -> None:
            # Kept here, not raised in the task group: that would raise a group of them, and the others
            # are still worth their download into the cache.
            try:
                got[n] = await self._original(f"{record.name} ({n + 1})", media[n], budget)
            except ImageUnavailable as exc:
                missing.append(exc)

        async with anyio.create_task_group() as tg:
            for n in range(len(media)):
                tg.start_soon(one, n)
        if missing:
            raise missing[0]
        return got

    async def size(self, record: Record) -> tuple[int, int]:
        """A finished image's full size: as upstream said, else read from the image (an edit's result,
        whose size upstream does not say), downloaded into the cache if it is not there."""
        if record.raw_width and record.raw_height:
            return record.raw_width, record.raw_height
        data, _ = await self.original(record)
        return previews.size_of(data)

    async def size_at(self, url: str, *, upstream: Upstream | None = None) -> tuple[int, int]:
        """The size of the picture at ``url`` (no record's), from its header: its first ``HEADER_BYTES``
        only, downloaded by the guard's rules (``Upstream.fetch_image``) with ``upstream``'s token where
        it goes to the API's own origin."""
        head, _ = await (upstream or self.upstream).fetch_image(url, timeout=HEADER_BUDGET_S, head=HEADER_BYTES)
        return previews.size_of(head)

    async def _original(self, name: str, medium: Medium, budget: float) -> tuple[bytes, str]:
        """One full-size picture: the cached copy, else downloaded once and cached."""
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
                    f"the image {name} is gone: its cached copy was {damaged}, and its URL no "
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
        thumbnail, a grid's quadrants labelled; an edit's results are all kept, and shown as one sheet
        labelled 1-4 like a grid. Nothing for running or failed records, or records that are not
        pictures. With previews off nothing is downloaded here: resource reads and exports fetch (and
        cache) the image when they need it."""
        if self.preview_px is None or not record.media or not (record.is_image or record.kind is Kind.EDITS):
            return Preview()
        try:
            with anyio.fail_after(PREVIEW_BUDGET_S):
                if len(record.media) > 1:
                    jpeg, mime = await self.sheet(record, self.preview_px, budget=PREVIEW_BUDGET_S)
                else:
                    medium = record.media[0]
                    jpeg, mime = await self._picture(
                        self._key(medium),
                        self.preview_px,
                        record.kind == Kind.GRID,
                        lambda: self._original(record.name, medium, PREVIEW_BUDGET_S),
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

    async def sheet(self, record: Record, px: int, *, budget: float = FETCH_BUDGET_S) -> tuple[bytes, str]:
        """A JPEG of the pictures a record holds (an edit's results) as a 2x2 grid labelled 1-4, its long
        side at most ``px``; each picture is downloaded into the cache on the way. The type given is the
        pictures' own."""
        slot = ("sheet:" + "|".join(self._key(m) for m in record.media), px, True)
        made = self._remembered(slot)
        if made is not None:
            return made
        pictures = await self.originals(record, budget=budget)
        datas = [data for data, _ in pictures]
        # One picture (an edit upstream did not split) is shown as it is.
        if len(datas) > 1:
            jpeg = await anyio.to_thread.run_sync(lambda: previews.sheet(datas, px), limiter=self._decoders)
        else:
            jpeg = await anyio.to_thread.run_sync(
                lambda: previews.thumbnail(datas[0], px, grid=False), limiter=self._decoders
            )
        return self._remember(slot, (jpeg, pictures[0][1]))

    async def _picture(self, key: str, px: int, grid: bool, load: Load) -> tuple[bytes, str]:
        """The one cache of pictures and the one decode limiter."""
        slot = (key, px, grid)
        made = self._remembered(slot)
        if made is not None:
            return made
        data, mime = await load()
        jpeg = await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=grid), limiter=self._decoders)
        return self._remember(slot, (jpeg, mime))

    def _remembered(self, slot: tuple[str, int, bool]) -> tuple[bytes, str] | None:
        made = self._pictures.get(slot)
        if made is not None:
            self._pictures.move_to_end(slot)
        return made

    def _remember(self, slot: tuple[str, int, bool], made: tuple[bytes, str]) -> tuple[bytes, str]:
        self._pictures[slot] = made
        while sum(len(j) for j, _ in self._pictures.values()) > PICTURES_KEPT_BYTES and len(self._pictures) > 1:
            self._pictures.popitem(last=False)
        return made
