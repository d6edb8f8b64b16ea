"""Foreign image inputs: image-prompt, blend and mask URLs that are not this simulator's own images.

The simulator reaches out for them only when whoever started it said so (``fetch_foreign``, never in
an embedded simulator); otherwise the renderer draws a placeholder. A fetch is bounded every way a
hostile URL could push it: one wall-clock limit for the whole fetch (name lookup, redirects, body),
a byte limit enforced while the body streams, a pixel limit read from the image header before any
decoding, public addresses only (checked at connect time, for every hop: see core/addresses.py), a
few redirects, and a small LRU of decoded inputs.

The fetch runs on the simulator's event loop, where a cancel scope makes the time limit exact; the
render threads that need an input wait for it there.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import anyio
import httpcore
from PIL import Image

from ..core.addresses import PublicOnlyNetwork, networks
from .knobs import SimConfig

log = logging.getLogger("mj_mcp.sim")

KEPT = 16  # decoded inputs remembered (each at most INPUT_LONG_SIDE square, so ~3 MB)
INPUT_LONG_SIDE = 1024  # inputs are blended into candidates no bigger than a grid cell
MAX_REDIRECTS = 3
_SNIFF_UNTIL = 256 * 1024  # headers that say the size sit in the first bytes; past this, decode decides
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # never the plugins that shell out or parse exotic formats
_REDIRECTS = {301, 302, 303, 307, 308}


class InputRefused(Exception):
    """A foreign input the simulator will not use; the message says which limit or rule."""


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k.lower() == name), None)


def _pixels_known(data: bytes) -> tuple[int, int] | None:
    """The image size, once the bytes so far hold the header that says it; None until then."""
    try:
        with Image.open(io.BytesIO(data), formats=_FORMATS) as img:
            return img.size
    except Image.DecompressionBombError:
        return (1 << 30, 1 << 30)  # Pillow's own limit is far above ours: certainly too big
    except Exception:  # not enough bytes yet, or not an image: decoding will tell
        return None


def _check_pixels(cfg: SimConfig, size: tuple[int, int]) -> None:
    if size[0] * size[1] > cfg.fetch_max_pixels:
        raise InputRefused(f"image is {size[0]}x{size[1]}, over {cfg.fetch_max_pixels} pixels")


async def download(cfg: SimConfig, url: str) -> bytes:
    """The body of ``url`` within ``cfg``'s limits; InputRefused otherwise. Needs a running event loop."""
    if not cfg.fetch_foreign:
        raise InputRefused("fetching foreign URLs is off")
    try:
        with anyio.fail_after(cfg.fetch_timeout_s):
            return await _download(cfg, url)
    except TimeoutError:
        raise InputRefused(f"no complete image within {cfg.fetch_timeout_s:g} s") from None
    except httpcore.UnsupportedProtocol:
        raise InputRefused("only http and https URLs") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.TimeoutException) as exc:
        raise InputRefused(f"fetch failed: {type(exc).__name__}") from None


async def _download(cfg: SimConfig, url: str) -> bytes:
    backend = PublicOnlyNetwork(unresolved=InputRefused, refuse=InputRefused, also=networks(cfg.fetch_allow_private))
    async with httpcore.AsyncConnectionPool(network_backend=backend, max_connections=1, retries=0) as pool:
        for _ in range(MAX_REDIRECTS + 1):
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                raise InputRefused("only http and https URLs")
            headers = [(b"accept", b"image/png, image/jpeg, image/webp, image/gif"), (b"user-agent", b"mj-mcp-sim")]
            async with pool.stream("GET", url, headers=headers) as resp:
                if resp.status in _REDIRECTS and (location := _header(resp.headers, b"location")):
                    url = urljoin(url, location)
                    continue
                if resp.status != 200:
                    raise InputRefused(f"HTTP {resp.status}")
                return await _body(cfg, resp)
    raise InputRefused(f"more than {MAX_REDIRECTS} redirects")


async def _body(cfg: SimConfig, resp: httpcore.Response) -> bytes:
    length = _header(resp.headers, b"content-length")
    if length is not None and length.strip().isdigit() and int(length) > cfg.fetch_max_bytes:
        raise InputRefused(f"body of {int(length)} bytes, over {cfg.fetch_max_bytes}")
    data = bytearray()
    size: tuple[int, int] | None = None
    sniff_at = 64
    async for chunk in resp.aiter_stream():
        data += chunk
        if len(data) > cfg.fetch_max_bytes:
            raise InputRefused(f"body over {cfg.fetch_max_bytes} bytes")
        if size is None and sniff_at <= len(data) <= _SNIFF_UNTIL:
            sniff_at = len(data) * 4  # a body that trickles in is not parsed again for every byte
            size = _pixels_known(bytes(data))
            if size is not None:
                _check_pixels(cfg, size)
    return bytes(data)


def decode(cfg: SimConfig, data: bytes) -> Image.Image:
    """An RGB image at most INPUT_LONG_SIDE square; the pixel limit is checked before decoding."""
    try:
        img = Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.DecompressionBombError:
        raise InputRefused(f"image over {cfg.fetch_max_pixels} pixels") from None
    except Exception:
        raise InputRefused("not a PNG, JPEG, WebP or GIF image") from None
    with img:
        _check_pixels(cfg, img.size)
        try:
            img.draft("RGB", (INPUT_LONG_SIDE, INPUT_LONG_SIDE))  # JPEG: decode at a fraction of the size
            out = img.convert("RGB")
        except Exception:
            raise InputRefused("image does not decode") from None
    out.thumbnail((INPUT_LONG_SIDE, INPUT_LONG_SIDE))
    return out


class Inputs:
    """Decoded foreign inputs for the render threads, remembered in a small LRU (refusals too)."""

    def __init__(self, config: Callable[[], SimConfig], loop: Callable[[], asyncio.AbstractEventLoop | None]) -> None:
        self._config = config
        self._loop = loop
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, Image.Image | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def image(self, url: str) -> Image.Image | None:
        """The decoded input, or None when it may not or cannot be had (the caller draws a stand-in)."""
        cfg = self._config()
        if not cfg.fetch_foreign:
            return None
        with self._lock:
            if url in self._kept:
                self._kept.move_to_end(url)
                return self._kept[url]
        img: Image.Image | None = None
        try:
            img = decode(cfg, self._fetch_on_loop(cfg, url))
        except InputRefused as exc:
            log.warning("image input refused (%s): %.200s", exc, url)
        except Exception:  # an input must never break a render: the swatch stands in
            log.exception("image input failed: %.200s", url)
        with self._lock:
            self._kept[url] = img
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        return img

    def _fetch_on_loop(self, cfg: SimConfig, url: str) -> bytes:
        loop = self._loop()
        if loop is None or loop.is_closed() or _running_in(loop):
            raise InputRefused("no event loop to fetch on")  # the loop's own thread must not wait on itself
        future = asyncio.run_coroutine_threadsafe(download(cfg, url), loop)
        try:
            return future.result(timeout=cfg.fetch_timeout_s + 1.0)  # the loop enforces the limit; this is a backstop
        except TimeoutError:
            future.cancel()
            raise InputRefused(f"no complete image within {cfg.fetch_timeout_s:g} s") from None


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
