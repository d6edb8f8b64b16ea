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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from ..core.kinds import Kind
from ..core.operations import EXPORT_IMAGE
from ..errors import DamagedCopy, FetchFailed, ImageUnavailable, UnreadableImage
from ..records import Medium, Record
from ..upstream import Upstream
from . import poster, previews
from .cache import ImageCache, key_for
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

Load = Callable[[], Awaitable[tuple[bytes, str]]]


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
        """One of a record's media: from the cache, else downloaded once (while its URL works) and cached."""
        url, key = medium.url, self._key(medium)
        video = medium.mime.startswith("video/")
        damaged = None
        try:
            hit = await self.cache.get(key)
        # Deleted: fetch it again while the URL works.
        except DamagedCopy as exc:
            hit, damaged = None, exc.message
        if hit is not None:
            return hit
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
                        lambda: self._kept(record.name, medium, PREVIEW_BUDGET_S),
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
