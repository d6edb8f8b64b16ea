"""A record's media: its full-size bytes (from the on-disk cache, else downloaded once and cached), and
the pictures made of them (a thumbnail for the model, a display rendition for the MCP App; for an edit,
one sheet of its four results as a 2x2 grid, each result downloaded into the cache at once). And the
size of a picture that is no record's (an https URL to edit), read from its header. A video's media are
its four MP4 clips, kept the same way; the picture made of them is its poster (``poster.py``).

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
whose preview ran out of time): one download per medium at a time, which every later reader joins.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio
from anyio.abc import TaskGroup

from ..core.kinds import Kind
from ..core.operations import EXPORT_IMAGE
from ..errors import DamagedCopy, FetchFailed, ImageUnavailable, UnreadableImage
from ..records import Medium, Record
from ..upstream import Upstream
from . import poster, previews
from .cache import EXTENSIONS, ImageCache, key_for
from .poster import ClipFacts

if TYPE_CHECKING:
    from PIL.Image import Image

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
# Posters whose clips' facts are remembered (a few numbers each).
FACTS_KEPT = 1024
# How long no thumbnail must have been made before a keep starts (``Media._results_first``).
QUIET_S = 0.25
# Full images kept in the background at once: each is a download of a few MB held in memory until written.
KEEPS_AT_ONCE = 4
# A keep that failed is tried again after these pauses (three tries in all), then left to the next reader.
KEEP_PAUSES_S = (2.0, 8.0)
# What a thumbnail is (previews.py makes JPEGs); kept on disk as that.
THUMBNAIL_TYPE = "image/jpeg"
# A rendition for a thumbnail is a small picture; anything larger is not what was asked for.
RENDITION_MAX_BYTES = 8 << 20

Load = Callable[[], Awaitable[tuple[bytes, str]]]
T = TypeVar("T")

log = logging.getLogger("mj_mcp.media")


@dataclass
class _Download:
    """One download of a medium, which every reader of it meanwhile waits for."""

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


@dataclass
class Poster:
    """What the model sees of a finished video: the contact sheet of its clips' first frames, and what
    each clip is (None where its clip could not be read); ``note`` says what is missing, and why."""

    jpeg: bytes | None = None
    clips: list[ClipFacts | None] = field(default_factory=list)
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
        # Thumbnails being made now, and the moment there are none: keeps wait for it (results first).
        self._previewing = 0
        self._previews_started = 0
        self._quiet = anyio.Event()
        self._quiet.set()
        # Cache key -> the download of that medium under way.
        self._downloads: dict[str, _Download] = {}
        # Image ids are unique within one upstream: the API's base URL, or the embedded simulator's
        # fixed origin (its base URL has a new port at every start; its archive keeps the ids).
        self._namespace = upstream.api_alias or upstream.settings.base_url
        self._decoders = anyio.CapacityLimiter(DECODES_AT_ONCE)
        # (key, long side, labelled) -> (JPEG, the source's MIME type), the least recently used first.
        self._pictures: OrderedDict[tuple[str, int, bool], tuple[bytes, str]] = OrderedDict()
        self._pictures_bytes = 0
        # A poster's key -> the facts of its clips, read when it was made.
        self._clip_facts: OrderedDict[str, list[ClipFacts | None]] = OrderedDict()

    def _key(self, medium: Medium) -> str:
        return key_for(self._namespace, medium.key, medium.url)

    async def original(self, record: Record, *, budget: float = FETCH_BUDGET_S) -> tuple[bytes, str]:
        """The full-size image and its MIME type."""
        if record.kind is Kind.VIDEOS:
            raise ImageUnavailable(
                f"{record.name} is a video: four clips, not one image",
                next_step=f'Each clip is a resource; {EXPORT_IMAGE}(image="{record.name}", clip=N, ...) saves one.',
            )
        if not record.is_image or not record.media:
            raise ImageUnavailable(f"{record.name} is {record.status}, with no image yet")
        return await self._kept(record.name, record.media[0], budget)

    async def originals(self, record: Record, *, budget: float = FETCH_BUDGET_S) -> list[tuple[bytes, str]]:
        """Every picture a record holds (an edit's four results), full size, downloaded side by side."""
        media = [m for m in record.media if m.mime.startswith("image/")]
        got: list[tuple[bytes, str]] = [(b"", "")] * len(media)
        missing: list[ImageUnavailable] = []

        async def one(n: int) -> None:
            # Kept here, not raised in the task group: that would raise a group of them, and the others
            # are still worth their download into the cache.
            try:
                got[n] = await self._kept(f"{record.name} ({n + 1})", media[n], budget)
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

    async def clip(self, record: Record, n: int, *, budget: float = FETCH_BUDGET_S) -> tuple[bytes, str]:
        """Clip ``n`` (1-4, upstream's order) of a finished video: its MP4 bytes and MIME type."""
        if record.kind is not Kind.VIDEOS:
            raise ImageUnavailable(f"{record.name} is not a video: it has no clips")
        clips = record.media
        if not clips:
            raise ImageUnavailable(f"{record.name} is {record.status}, with no clips yet")
        if not 1 <= n <= len(clips):
            raise ImageUnavailable(f"{record.name} has clips 1-{len(clips)}, not {n}")
        return await self._kept(record.name, clips[n - 1], budget)

    async def _kept(self, name: str, medium: Medium, budget: float) -> tuple[bytes, str]:
        """One of a record's media: from the cache, else the download under way (joined), else one
        started here (while its URL works) and cached."""
        key = self._key(medium)
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
                    return await self._download(name, medium, damaged, budget, under_way)
                await under_way.done.wait()
                if under_way.got is not None:
                    return under_way.got
                if under_way.error is not None:
                    raise under_way.error
                # Whoever downloaded it gave up (cancelled) before the end: look again.

    async def _download(
        self, name: str, medium: Medium, damaged: str | None, budget: float, queued: _Download | None
    ) -> tuple[bytes, str]:
        """Download a medium once and cache it, telling whoever waits for it meanwhile."""
        key = self._key(medium)
        under_way = queued or _Download()
        under_way.started = True
        self._downloads[key] = under_way
        try:
            under_way.got = await self._fetch(name, medium, damaged, budget)
            await self.cache.put(key, *under_way.got)
            return under_way.got
        except ImageUnavailable as exc:
            under_way.error = exc
            raise
        finally:
            if self._downloads.get(key) is under_way:
                del self._downloads[key]
            under_way.done.set()

    async def _fetch(self, name: str, medium: Medium, damaged: str | None, budget: float) -> tuple[bytes, str]:
        """A medium's bytes from its URL, checked to be what the record says it is."""
        url = medium.url
        video = medium.mime.startswith("video/")
        try:
            # A clip is bounded like a picture (64 MB; a 21 s extension at 720p is a few MB).
            data, ctype = await self.upstream.fetch_image(url, timeout=budget)
        except FetchFailed as exc:
            if damaged:
                raise ImageUnavailable(
                    f"the {'clip' if video else 'image'} {name} is gone: its cached copy was {damaged}, and its "
                    f"URL no longer serves it ({exc.message})",
                    next_step=REMAKE,
                ) from None
            raise ImageUnavailable(f"download failed ({exc.message})") from None
        # What came is what the record says it is: a picture (its type read from its bytes), or an MP4.
        mime = (medium.mime if poster.is_mp4(data) else None) if video else previews.sniff_mime(data)
        if mime is None:
            what = "an MP4 clip" if video else "an image"
            raise ImageUnavailable(f"download is not {what} ({(ctype or 'no type').split(';')[0]})")
        return data, mime

    async def keep(self, record: Record) -> None:
        """Keep a finished image: download it into the cache in the background, now, while its URL works
        (unless it is cached or under way). Without a background, the next read downloads it."""
        if self._background is None or self.cache.directory is None or not record.is_image or not record.media:
            return
        medium = record.media[0]
        key = self._key(medium)
        if key in self._downloads:
            return
        # Under way from now: a reader that comes before the download starts takes it over. Whether it is
        # cached already is looked at in the background too (a result does not wait for the disk).
        self._downloads[key] = queued = _Download()
        self._background.start_soon(self._keep, record, medium, key, queued)

    async def _keep(self, record: Record, medium: Medium, key: str, queued: _Download) -> None:
        try:
            for pause in (*KEEP_PAUSES_S, None):
                try:
                    async with self._keepers:
                        # Here, not before the turn: keeps queued in a lull would then run through the next burst.
                        await self._results_first()
                        # Cached before (a restart, another replica) or meanwhile: nothing to do.
                        if await self.cache.holds(key):
                            return
                        if self._downloads.get(key) is queued and not queued.started:
                            await self._download(record.name, medium, None, FETCH_BUDGET_S, queued)
                        else:
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
        """Keep a finished image (``keep``) and make its thumbnail, a grid's quadrants labelled; an edit's
        results are all kept, and shown as one sheet labelled 1-4 like a grid. Nothing for running or
        failed records, or records that are not pictures. With previews off nothing is downloaded here:
        resource reads and exports fetch (and cache) the image when they need it."""
        if self.preview_px is None or not record.media or not (record.is_image or record.kind is Kind.EDITS):
            return Preview()
        try:
            with anyio.fail_after(PREVIEW_BUDGET_S):
                if len(record.media) > 1:
                    jpeg, mime = await self.sheet(record, self.preview_px, budget=PREVIEW_BUDGET_S)
                else:
                    await self.keep(record)
                    jpeg, mime = await self._first(self._thumbnail(record, self.preview_px, record.kind == Kind.GRID))
        # UnreadableImage too: the bytes are there, they do not decode. One line: the next step is the result's own.
        except ImageUnavailable as exc:
            return Preview(note=f"preview unavailable: {exc.message}")
        except TimeoutError:
            return Preview(note=f"preview unavailable: no image within {PREVIEW_BUDGET_S:g} s")
        return Preview(jpeg=jpeg, mime=mime)

    async def _first(self, made: Awaitable[T]) -> T:
        """``made``, awaited while the keeps wait (``_results_first``)."""
        if self._previewing == 0:
            self._quiet = anyio.Event()
        self._previewing += 1
        self._previews_started += 1
        try:
            return await made
        finally:
            self._previewing -= 1
            if self._previewing == 0:
                self._quiet.set()

    async def _results_first(self) -> None:
        """Wait until no thumbnail has been made for ``QUIET_S``, for at most ``PREVIEW_BUDGET_S``: a keep
        runs in the background and its URL works for hours, while a result waits for its thumbnail. Quiet
        for a moment, not an instant: results finishing together leave gaps of a few ms between them."""
        with anyio.move_on_after(PREVIEW_BUDGET_S):
            while True:
                while self._previewing:
                    await self._quiet.wait()
                started = self._previews_started
                await anyio.sleep(QUIET_S)
                if self._previews_started == started:
                    return

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
        source = await self._rendition(record, px)
        if source is None:
            source = await self.original(record, budget=PREVIEW_BUDGET_S)
        data, mime = source
        keep_as = f"{stem}-{EXTENSIONS[mime]}"
        jpeg = await anyio.to_thread.run_sync(
            lambda: self._make_thumbnail(data, px, grid, keep_as), limiter=self._decoders
        )
        return self._remember(slot, (jpeg, mime))

    def _make_thumbnail(self, data: bytes, px: int, grid: bool, keep_as: str) -> bytes:
        """The thumbnail, made and kept on disk in one turn of a worker thread."""
        jpeg = previews.thumbnail(data, px, grid=grid)
        self.thumbnails.put_sync(keep_as, jpeg, THUMBNAIL_TYPE)
        return jpeg

    def _kept_thumbnail(self, stem: str) -> tuple[bytes, str] | None:
        """A thumbnail made before (this process or an earlier one), with its full image's MIME type."""
        for mime, ext in EXTENSIONS.items():
            try:
                kept = self.thumbnails.get_sync(f"{stem}-{ext}", stored_as=THUMBNAIL_TYPE)
            except DamagedCopy:
                kept = None
            if kept is not None:
                return kept[0], mime
        return None

    async def _rendition(self, record: Record, px: int) -> tuple[bytes, str] | None:
        """A rendition of exactly the thumbnail's size and its type (taken for the full image's), where
        the image's URL can ask for one and the image is larger; None when not (the full image is used)."""
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
        return data, mime

    async def _decoded(self, data: bytes, px: int, grid: bool) -> bytes:
        return await anyio.to_thread.run_sync(lambda: previews.thumbnail(data, px, grid=grid), limiter=self._decoders)

    async def _picture(self, key: str, px: int, grid: bool, load: Load) -> tuple[bytes, str]:
        """The one cache of pictures and the one decode limiter."""
        slot = (key, px, grid)
        made = self._remembered(slot)
        if made is not None:
            return made
        data, mime = await load()
        return self._remember(slot, (await self._decoded(data, px, grid), mime))

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

    # --- a video's poster ---------------------------------------------------------------------------

    async def poster(self, record: Record) -> Poster:
        """Keep a finished video's clips (download them into the cache now, while their URLs work) and
        make the model's poster of them: their first frames on a 2x2 sheet, labelled 1-4, long side
        ``preview_px``, with what each clip is. Nothing for anything else, or with previews off (clips
        are fetched, and cached, when they are read)."""
        if record.kind is not Kind.VIDEOS or not record.media or self.preview_px is None:
            return Poster()
        try:
            with anyio.fail_after(PREVIEW_BUDGET_S):
                return await self._poster(record, self.preview_px, labelled=True, budget=PREVIEW_BUDGET_S)
        # UnreadableImage too: no clip decodes. One line: the next step is the result's own.
        except ImageUnavailable as exc:
            return Poster(note=f"poster unavailable: {exc.message}")
        except TimeoutError:
            return Poster(note=f"poster unavailable: no clips within {PREVIEW_BUDGET_S:g} s")

    async def poster_rendition(self, record: Record, px: int) -> bytes | None:
        """The App's picture of a finished video: the sheet of its clips' first frames, unlabelled, its
        long side at most ``px``."""
        return (await self._poster(record, px, labelled=False, budget=FETCH_BUDGET_S)).jpeg

    async def _poster(self, record: Record, px: int, *, labelled: bool, budget: float) -> Poster:
        """The poster, remembered with the other pictures once it shows every clip (one missing for a
        download that failed is tried again next time)."""
        key = "poster-" + self._key(record.media[0])
        slot = (key, px, labelled)
        made = self._pictures.get(slot)
        if made is not None:
            self._pictures.move_to_end(slot)
            return Poster(made[0], list(self._clip_facts.get(key, [])))
        frames, facts, why = await self._first_frames(record, budget)
        jpeg = await anyio.to_thread.run_sync(
            lambda: poster.contact_sheet(frames, px, labelled=labelled), limiter=self._decoders
        )
        missing = [n for n, fact in enumerate(facts, start=1) if fact is None]
        if not missing:
            self._remember(slot, (jpeg, "image/jpeg"))
            self._clip_facts[key] = facts
            while len(self._clip_facts) > FACTS_KEPT:
                self._clip_facts.popitem(last=False)
        reasons = "; ".join(f"clip {n}: {why[n]}" for n in missing)
        return Poster(jpeg, facts, f"not on the poster: {reasons}" if missing else None)

    async def _first_frames(
        self, record: Record, budget: float
    ) -> tuple[list[Image | None], list[ClipFacts | None], dict[int, str]]:
        """The first frame and the facts of every clip (None where it could not be had, and why, by clip
        number), fetched at once and each decoded as it comes, so that only frames are held, not clips;
        ``UnreadableImage`` when none could be had."""
        frames: list[Image | None] = [None] * len(record.media)
        facts: list[ClipFacts | None] = [None] * len(record.media)
        why: dict[int, str] = {}

        async def one(n: int) -> None:
            try:
                data, _ = await self.clip(record, n, budget=budget)
                frames[n - 1], facts[n - 1] = await anyio.to_thread.run_sync(
                    poster.first_frame, data, limiter=self._decoders
                )
            except ImageUnavailable as exc:
                why[n] = exc.message

        async with anyio.create_task_group() as tg:
            for n in range(1, len(frames) + 1):
                tg.start_soon(one, n)
        if not any(frames):
            raise UnreadableImage(f"no clip could be shown ({why.get(1, 'none')})")
        return frames, facts, why
