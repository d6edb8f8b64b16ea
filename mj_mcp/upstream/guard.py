"""The guard on every URL mj-mcp downloads: images, their previews, the partial pictures of a running task.

Those URLs come from upstream's replies, and a reply is data, not an order: whoever can make a URL land
in one (a mistaken or compromised upstream, or anything upstream repeats) must not steer the server at
the machine it runs on, its network, or a cloud metadata service. So a download follows these rules:

- **The API's own origin** (``settings.base_url``: scheme, host and port, exactly) is trusted as it is:
  it is the service the token already goes to. It is a loopback address for the simulator, in tests
  and when embedded, so its address is not judged. Only a chain of hops that never left this origin
  carries the token.
- **Any other URL** must be ``https``, and its host must resolve to public addresses only
  (``core/addresses.py``: not loopback, private, link-local, CGNAT, unique-local, metadata such as
  169.254.169.254 or fd00:ec2::254, nor IPv4 carried in IPv6). The check runs when the connection is
  made (``core.addresses.PublicOnlyNetwork``, httpcore's network-backend seam), on every address the name resolves
  to, and the connection goes to an address that was checked, so a name cannot answer one address to
  the check and another to the connection (DNS rebinding). No proxy from the environment is used:
  it would resolve the name itself, past the check.
- **Redirects** are followed here, at most ``MAX_REDIRECTS``, each hop judged again by the rules above.
- **Bounds**: one deadline for the whole chain (a turn to download, lookups, connections, redirects,
  body), and a byte limit, from ``content-length`` before reading and while the body streams; or, for a
  picture's header (``head``), only its first bytes, asked for with a ``Range`` and read no further if
  it is not honoured. At most ``DOWNLOADS_AT_ONCE`` downloads run at once, in pools of their own (not the
  API's, which holds a long-lived stream per job): httpcore walks its whole pool and queue on every
  request that starts or ends, so 200 results finishing at once over one shared pool cost a third of the
  server's CPU in that walk alone (``bench/concurrency.py``).

A refusal is a ``FetchFailed`` whose message starts with ``refused:`` and says which rule, never the URL.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpcore
import httpx

from ..core.addresses import PublicOnlyNetwork
from ..errors import FetchFailed

log = logging.getLogger("mj_mcp.upstream")

MAX_REDIRECTS = 3
# Downloads at once, in all; more wait their turn (within their deadline). Loopback or a CDN, this
# many keep the link busy, and each pool stays small enough for httpcore's walk to cost nothing.
DOWNLOADS_AT_ONCE = 8
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
RULE = "mj-mcp downloads only https URLs at public addresses, or from the API's own origin"
# Exceptions of a connection or a body that broke: httpx's own, and httpcore's from the guarded transport.
BROKEN = (
    httpx.HTTPError,
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


def refused(why: str) -> FetchFailed:
    log.warning("refused an image download: %s", why)
    return FetchFailed(f"refused: {why}")


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class PublicOnlyTransport(httpx.AsyncBaseTransport):
    """httpx over an httpcore pool whose every connection goes through ``PublicOnlyNetwork``."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=PublicOnlyNetwork(unresolved=FetchFailed, refuse=lambda why: refused(f"{why}; {RULE}")),
            max_connections=DOWNLOADS_AT_ONCE,
            max_keepalive_connections=DOWNLOADS_AT_ONCE,
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        )
        got = await self._pool.handle_async_request(sent)
        return httpx.Response(got.status, headers=got.headers, stream=_Body(got.stream), extensions=got.extensions)

    async def aclose(self) -> None:
        await self._pool.aclose()


class GuardedFetch:
    """Downloads by the rules above: on the API's own origin through a client of its own for that
    origin, elsewhere through a public-only one; ``DOWNLOADS_AT_ONCE`` at a time over both."""

    def __init__(self, base_url: str, user_agent: str, ssl_context: ssl.SSLContext) -> None:
        pool = httpx.Limits(max_connections=DOWNLOADS_AT_ONCE, max_keepalive_connections=DOWNLOADS_AT_ONCE)
        # As the API's own client: its proxy from the environment, if any, is the API's. One TLS context
        # for all (loading the CA bundle is most of what a client costs at start-up).
        self._api = httpx.AsyncClient(
            base_url=base_url, limits=pool, verify=ssl_context, headers={"user-agent": user_agent}
        )
        self._home = origin(self._api.base_url)
        self._public = httpx.AsyncClient(
            transport=PublicOnlyTransport(ssl_context), trust_env=False, headers={"user-agent": user_agent}
        )
        self._turns = anyio.CapacityLimiter(DOWNLOADS_AT_ONCE)

    async def aclose(self) -> None:
        await self._public.aclose()
        await self._api.aclose()

    async def get(
        self, url: str, *, auth: Mapping[str, str], timeout: float, max_bytes: int, head: int | None = None
    ) -> tuple[bytes, str | None]:
        """The body of ``url`` and its content type, within ``timeout`` seconds and ``max_bytes``; with
        ``head``, only its first ``head`` bytes (all of a shorter body), however large it is."""
        try:
            with anyio.fail_after(timeout):
                async with self._turns:
                    return await self._follow(url, auth, timeout, max_bytes, head)
        except TimeoutError:
            raise FetchFailed(f"no image within {timeout:g} s") from None
        except BROKEN as exc:
            raise FetchFailed(type(exc).__name__) from None

    async def _follow(
        self, url: str, auth: Mapping[str, str], timeout: float, max_bytes: int, head: int | None
    ) -> tuple[bytes, str | None]:
        at_home = True
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise FetchFailed("bad image URL") from None
        for _ in range(MAX_REDIRECTS + 1):
            home = origin(target) == self._home
            at_home = at_home and home
            if not home and target.scheme != "https":
                raise refused(f"a {target.scheme or 'schemeless'} URL off the API's origin; {RULE}")
            client = self._api if home else self._public
            # accept-encoding identity: the byte limit then bounds what arrives, not a decompressed multiple.
            headers = {"accept": "image/*", "accept-encoding": "identity", **(auth if at_home else {})}
            if head is not None:
                headers["range"] = f"bytes=0-{head - 1}"
            request = client.build_request("GET", target, headers=headers, timeout=httpx.Timeout(timeout))
            request.headers.pop("content-type", None)
            resp = await client.send(request, stream=True, follow_redirects=False)
            try:
                if resp.status_code in REDIRECTS:
                    location = resp.headers.get("location")
                    if not location:
                        raise FetchFailed(f"HTTP {resp.status_code} without a location")
                    try:
                        target = target.join(location)
                    except httpx.InvalidURL:
                        raise FetchFailed("bad redirect URL") from None
                    continue
                if not 200 <= resp.status_code < 300:
                    raise FetchFailed(f"HTTP {resp.status_code}")
                body = await (_first(resp, head) if head is not None else _bounded(resp, max_bytes))
                return body, resp.headers.get("content-type")
            finally:
                await resp.aclose()
        raise refused(f"more than {MAX_REDIRECTS} redirects")


async def _first(resp: httpx.Response, size: int) -> bytes:
    """The body's first ``size`` bytes: a server that ignores the ``Range`` is read no further (the
    connection is closed, not drained)."""
    chunks, got = [], 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk)
        got += len(chunk)
        if got >= size:
            break
    return b"".join(chunks)[:size]


async def _bounded(resp: httpx.Response, max_bytes: int) -> bytes:
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"larger than {max_bytes >> 20} MB")
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(f"larger than {max_bytes >> 20} MB")
        chunks.append(chunk)
    return b"".join(chunks)
