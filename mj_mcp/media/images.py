"""A record's media: its full-size bytes (from the on-disk cache, else downloaded once and cached), and
the pictures made of them (a thumbnail for the model, a display rendition for the MCP App).

Everything that shows or keeps a picture (result previews, ``mj://images/{name}`` reads, exports, the
App's view) goes through ``Media``, so a picture is downloaded at most once and keeps working after its
CDN URL has expired. The pictures made of it live in one in-memory cache, bounded in bytes, and are
decoded under one limiter: a poll or a second look costs no decode, and a burst of finishing jobs does
not decode gigabytes at once.

A finished image's thumbnail and its keeping are two things. The thumbnail is what the result waits for;
it is made from a small rendition where the image's URL allows one (``previews.sized_url``), else from
the full image, and kept on disk beside it, so it is made once per image. The full image is kept in
the background from the moment the job is seen finished, with a budget of its own, whatever the result
waits for (200 results finishing at once would otherwise wait for 200 full downloads, and cancel those
whose preview ran out of time): one download per image at a time, which every later reader joins.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from ..core.kinds import Kind
from ..errors import DamagedCopy, FetchFailed, ImageUnavailable
from ..records import Medium, Record
from ..upstream import Upstream
from . import previews
from .cache import EXTENSIONS, ImageCache, key_for

# A preview is a nicety: never hold a finished result longer than this.
PREVIEW_BUDGET_S = 15.0
# A resource read or an export wants the image.
FETCH_BUDGET_S = 120.0
# Pictures remembered: a 512 px thumbnail is 20-30 KB, a 1024 px rendition 100-200 KB.
PICTURES_KEPT_BYTES = 24 << 20
# Decoding a 2048 px PNG takes ~12 MB for a moment: two at a time (the cores we expect) keeps 200
# finishing jobs from holding gigabytes, and the C allocator from keeping it after.
DECODES_AT_ONCE = 2
# Full images kept in the background at once: each is a download of a few MB held in memory until written.
KEEPS_AT_ONCE = 4
# A keep that failed is tried again after these pauses (three tries in all), then left to the next reader.
KEEP_PAUSES_S = (2.0, 8.0)
# A rendition for a thumbnail is a small picture; anything larger is not what was asked for.
RENDITION_MAX_BYTES = 8 << 20
REMAKE = "Make it again: the same action on its parent, or imagine with its prompt."

Load = Callable[[], Awaitable[tuple[bytes, str]]]

log = logging.getLogger("mj_mcp.media")


@dataclass
class _Download:
    """One download of a full image, which every reader of it meanwhile waits for."""

    done: anyio.Event = field(default_factory=anyio.Event)
    # A keep queued in the background has not started yet.
    started: bool = False
    got: tuple[bytes, str] | None = None
    error: ImageUnavailable | None = None


@dataclass
class Preview:
    jpeg: bytes | None = None
    # The full image's type, when it was looked at.
    mime: str | None = None
    # One line when the thumbnail was left out for a reason worth saying.
    note: str | None = None


class Media:
    def __init__(
        self,
        upstream: Upstream,
        cache: ImageCache,
        thumbnails: ImageCache | None = None,
        *,
        preview_px: int | None,
        background: TaskGroup | None = None,
    ) -> None:
        self.upstream = upstream
        self.cache = cache
        # Thumbnails made once per image, kept beside the images (``cache.image_caches``).
        self.thumbnails = thumbnails or ImageCache(None, 0)
        self.preview_px = preview_px
        # Where full images are kept while results go on (Studio.open's); without one, a preview waits for it.
        self._background = background
        self._keepers = anyio.CapacityLimiter(KEEPS_AT_ONCE)
        # Cache key -> the download of that image under way.
        self._downloads: dict[str, _Download] = {}
        # Image ids are unique within one upstream: the API's base URL, or the embedded simulator's
        # fixed origin (its base URL has a new port at every start; its archive keeps the ids).
        self._namespace = upstream.api_alias or upstream.settings.base_url
        self._decoders = anyio.CapacityLimiter(DECODES_AT_ONCE)
        # (key, long side, labelled) -> (JPEG, the source's MIME type), the least recently used first.
        self._pictures: OrderedDict[tuple[str, int, bool], tuple[bytes, str]] = OrderedDict()
        self._pictures_bytes = 0

    def _key(self, medium: Medium) -> str:
        return key_for(self._namespace, medium.key, medium.url)

    async def original(self, record: Record, *, budget: float = FETCH_BUDGET_S) -> tuple[bytes, str]:
        """The full-size image and its MIME type: from the cache, else the download under way (joined),
        else one started here (and cached)."""
        if not record.is_image or not record.media:
            raise ImageUnavailable(f"{record.name} is {record.status}, with no image yet")
        key = self._key(record.media[0])
        with anyio.fail_after(budget):
            while True:
                damaged = None
                try:
                    hit = await self.cache.get(key)
                # Deleted: fetch it again while the URL works.
                except DamagedCopy as exc:
                    hit, damaged = None, exc.message
                if hit is not None:
                    return hit
                under_way = self._downloads.get(key)
                # A keep still queued is taken over: a reader does not wait behind other images' keeps.
                if under_way is None or not under_way.started:
                    return await self._download(record, key, damaged, budget, under_way)
                await under_way.done.wait()
                if under_way.got is not None:
                    return under_way.got
                if under_way.error is not None:
                    raise under_way.error
                # Whoever downloaded it gave up (cancelled) before the end: look again.

    async def _download(
        self, record: Record, key: str, damaged: str | None, budget: float, queued: _Download | None
    ) -> tuple[bytes, str]:
        """Download the full image once and cache it, telling whoever waits for it meanwhile."""
        under_way = queued or _Download()
        under_way.started = True
        self._downloads[key] = under_way
        try:
            under_way.got = await self._fetch_original(record, damaged, budget)
            await self.cache.put(key, *under_way.got)
            return under_way.got
        except ImageUnavailable as exc:
            under_way.error = exc
            raise
        finally:
            if self._downloads.get(key) is under_way:
                del self._downloads[key]
            under_way.done.set()

    async def _fetch_original(self, record: Record, damaged: str | None, budget: float) -> tuple[bytes, str]:
        try:
            data, ctype = await self.upstream.fetch_image(record.media[0].url, timeout=budget)
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
        return data, mime

    async def keep(self, record: Record) -> None:
        """Keep a finished image: download it into the cache in the background, now, while its URL works
        (unless it is cached or under way). Without a background, the next read downloads it."""
        if self._background is None or self.cache.directory is None or not record.is_image or not record.media:
            return
        key = self._key(record.media[0])
        if key in self._downloads or await self.cache.holds(key) or key in self._downloads:
            return
        # Under way from now: a reader that comes before the download starts takes it over.
        self._downloads[key] = queued = _Download()
        self._background.start_soon(self._keep, record, key, queued)

    async def _keep(self, record: Record, key: str, queued: _Download) -> None:
        try:
            for pause in (*KEEP_PAUSES_S, None):
                try:
                    async with self._keepers:
                        if self._downloads.get(key) is queued and not queued.started:
                            await self._download(record, key, None, FETCH_BUDGET_S, queued)
                        elif not await self.cache.holds(key):
                            # A reader took it over and gave up, or it failed, or it was damaged since.
                            await self.original(record)
                    return
                except (ImageUnavailable, TimeoutError) as exc:
                    why = exc.message if isinstance(exc, ImageUnavailable) else f"no image within {FETCH_BUDGET_S:g} s"
                    if pause is None:
                        log.warning("could not keep the image %s: %s", record.name, why)
                        return
                    # A connection that broke under load is worth another try; a reader may still fetch it.
                    log.info("keeping the image %s failed (%s); trying again in %g s", record.name, why, pause)
                    await anyio.sleep(pause)
        finally:
            # Cancelled while queued (the studio closing): nobody may wait for it.
            if self._downloads.get(key) is queued and not queued.started:
                del self._downloads[key]
                queued.done.set()

    async def fetch(self, url: str, *, timeout: float, upstream: Upstream | None = None) -> tuple[bytes, str]:
        """A picture that is not kept (a running job's partial one, destroyed when the job ends), fetched
        with ``upstream``'s token where it goes to the API's own origin (a workspace's own)."""
        data, ctype = await (upstream or self.upstream).fetch_image(url, timeout=timeout)
        return data, ctype or ""

    async def preview(self, record: Record) -> Preview:
        """Keep a finished image (``keep``) and make its thumbnail, a grid's quadrants labelled; nothing
        for running or failed records, or records that are not one picture. With previews off nothing
        is downloaded here: resource reads and exports fetch (and cache) the image when they need it."""
        if not record.is_image or not record.media or self.preview_px is None:
            return Preview()
        await self.keep(record)
        try:
            with anyio.fail_after(PREVIEW_BUDGET_S):
                jpeg, mime = await self._thumbnail(record, self.preview_px, record.kind == Kind.GRID)
        # UnreadableImage too: the bytes are there, they do not decode. One line: the next step is the result's own.
        except ImageUnavailable as exc:
            return Preview(note=f"preview unavailable: {exc.message}")
        except TimeoutError:
            return Preview(note=f"preview unavailable: no image within {PREVIEW_BUDGET_S:g} s")
        return Preview(jpeg=jpeg, mime=mime)

    async def _thumbnail(self, record: Record, px: int, grid: bool) -> tuple[bytes, str]:
        """The thumbnail (and the full image's MIME type): remembered, else kept on disk beside the image,
        else made from a rendition of the right size, else from the full image; kept in both places."""
        key = self._key(record.media[0])
        slot = (key, px, grid)
        made = self._remembered(slot)
        if made is not None:
            return made
        # The full image's type is in the thumbnail's key: a result's link says it.
        stem = f"{key}-t{px}{'g' if grid else ''}"
        kept = await anyio.to_thread.run_sync(self._kept_thumbnail, stem)
        if kept is not None:
            return self._remember(slot, kept)
        made = await self._from_rendition(record, px, grid)
        if made is None:
            data, mime = await self.original(record, budget=PREVIEW_BUDGET_S)
            made = await self._decoded(data, px, grid), mime
        await self.thumbnails.put(f"{stem}-{EXTENSIONS[made[1]]}", made[0], "image/jpeg")
        return self._remember(slot, made)

    def _kept_thumbnail(self, stem: str) -> tuple[bytes, str] | None:
        """A thumbnail made before (this process or an earlier one), with its full image's MIME type."""
        for mime, ext in EXTENSIONS.items():
            try:
                kept = self.thumbnails.get_sync(f"{stem}-{ext}")
            except DamagedCopy:
                kept = None
            if kept is not None:
                return kept[0], mime
        return None

    async def _from_rendition(self, record: Record, px: int, grid: bool) -> tuple[bytes, str] | None:
        """The thumbnail made from a rendition of exactly its size, where the image's URL can ask for one
        and the image is larger than the thumbnail; None when not (the full image is used instead)."""
        raw = (record.raw_width, record.raw_height)
        if raw[0] is None or raw[1] is None or raw[0] <= 0 or raw[1] <= 0:
            return None
        size = previews.fitted((raw[0], raw[1]), px)
        url = previews.sized_url(record.image_url, size)
        if url is None or size == raw:
            return None
        try:
            data, _ = await self.upstream.fetch_image(url, timeout=PREVIEW_BUDGET_S, max_bytes=RENDITION_MAX_BYTES)
        except FetchFailed as exc:
            log.info("no rendition of %s (%s): the full image is used", record.name, exc.message)
            return None
        mime = previews.sniff_mime(data)
        if mime is None or previews.dimensions(data) != size:
            log.info("the rendition of %s is not the %dx%d asked for: the full image is used", record.name, *size)
            return None
        return await self._decoded(data, px, grid), mime

    async def _decoded(self, data: bytes, px: int, grid: bool) -> bytes:
        return await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=grid), limiter=self._decoders)

    def _remembered(self, slot: tuple[str, int, bool]) -> tuple[bytes, str] | None:
        made = self._pictures.get(slot)
        if made is not None:
            self._pictures.move_to_end(slot)
        return made

    def _remember(self, slot: tuple[str, int, bool], made: tuple[bytes, str]) -> tuple[bytes, str]:
        old = self._pictures.pop(slot, None)
        self._pictures_bytes += len(made[0]) - (len(old[0]) if old else 0)
        self._pictures[slot] = made
        while self._pictures_bytes > PICTURES_KEPT_BYTES and len(self._pictures) > 1:
            _, (jpeg, _) = self._pictures.popitem(last=False)
            self._pictures_bytes -= len(jpeg)
        return made

    async def rendition(self, key: str, px: int, load: Load) -> bytes:
        """A JPEG of what ``load`` gives, its long side at most ``px``, remembered under ``key``."""
        jpeg, _ = await self._picture(key, px, False, load)
        return jpeg

    async def _picture(self, key: str, px: int, grid: bool, load: Load) -> tuple[bytes, str]:
        """The one cache of pictures and the one decode limiter."""
        slot = (key, px, grid)
        made = self._remembered(slot)
        if made is not None:
            return made
        data, mime = await load()
        return self._remember(slot, (await self._decoded(data, px, grid), mime))
