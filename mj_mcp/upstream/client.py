"""The AceDataCloud Midjourney HTTP client: one pooled ``httpx.AsyncClient``; knows nothing of MCP.

It sends the typed requests of ``requests.py`` and turns every answer into its reply model or an
``errors.UpstreamError`` (read off the wire by ``wire.py``). One policy decides which failed attempts
are sent again, by the endpoint's ``Retry``: a request that may start a paid job is resent only when
upstream provably started nothing (a 429 rejection, a refused connection), since a resent submit could
bill twice; a lookup is retried on every transient failure.

Images are downloaded through ``guard.py``, which checks every URL and every redirect (upstream names
them, and a reply is data, not an order) and lets the token go only to the API's own origin.

Everything upstream says passes through the ``Redactor`` (``core/redact.py``) before anything else
reads it: the raw bytes before decoding, the decoded strings after, and the errors made of them,
so a token upstream quotes back, in any escaping, reaches no result, error or log line.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from .. import errors
from .._version import __version__
from ..core.redact import Redactor
from ..errors import StreamInterrupted, UnreadableReply
from ..settings import Settings
from .guard import GuardedFetch
from .models import MAX_MESSAGE, TaskUpdate, UpstreamTask, unreadable_fields
from .requests import RETRIEVE, RETRIEVE_BATCH, Body, Endpoint, RetrieveBatchBody, RetrieveBody, Retry, TaskBody
from .wire import error_from_payload, error_from_response

log = logging.getLogger("mj_mcp.upstream")

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)
# The longest wait for the end of a stream after its final line.
DRAIN_S = 1.0
# The API's connections are in this many pools, used in turn: httpcore walks a pool's every connection
# whenever a request starts or ends, and each running job holds a stream, so 200 jobs in one pool made
# every request cost a walk of 200 (quadratic in the jobs, and worse once the pool is over its keep-alive
# count: bench/concurrency's second batch ran at 1.6x). In 8, a walk is of 25.
API_POOLS = 8
NDJSON = "application/x-ndjson"


class NotSent(errors.ConnectionLost):
    """The connection was refused before any byte of the request left: upstream started nothing."""


def may_resend(retry: Retry, exc: errors.UpstreamError) -> bool:
    """The one retry policy: whether a failed attempt of a request with this ``Retry`` may be sent again."""
    if isinstance(exc, (errors.RateLimited, NotSent)):
        # A rejection, or a refusal before sending: nothing was started upstream.
        return True
    lookup_may_retry = (errors.ServerError, errors.UpstreamTimeout, errors.ConnectionLost, UnreadableReply)
    return retry is Retry.LOOKUP and isinstance(exc, lookup_may_retry)


def _from_alias(url: str, alias: str | None, base_url: str) -> str:
    """``url`` with the origin ``alias`` (exactly, followed by a path) replaced by ``base_url``."""
    if alias and url.startswith(f"{alias}/"):
        return base_url.rstrip("/") + url[len(alias) :]
    return url


class Upstream:
    """The client for one upstream token: the operator's (``ACEDATACLOUD_API_TOKEN``), or through
    ``with_token`` a principal's own. All of them share one connection pool and one ``Redactor``."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None, api_alias: str | None = None
    ) -> None:
        self.settings = settings
        # The embedded simulator names its images under a fixed origin that resolves nowhere, because
        # its port changes with every start and stored records keep the URLs: fetched from base_url.
        self.api_alias = api_alias
        token = settings.api_token.get_secret_value() if settings.api_token else ""
        # Sent per request, to the API only.
        self._auth = {"authorization": f"Bearer {token}"} if token else {}
        # The server also installs its log filter on its handlers.
        self.redactor = Redactor([token])
        # Closes the pool; a with_token view does not.
        self._owner = True
        # One TLS context (its CA bundle loaded once) for the API's clients and the downloads'.
        tls = httpx.create_ssl_context()
        limits = httpx.Limits(max_connections=512 // API_POOLS, max_keepalive_connections=64 // API_POOLS)
        self._pools = tuple(
            httpx.AsyncClient(
                base_url=settings.base_url,
                verify=tls,
                headers={"content-type": "application/json", "user-agent": f"mj-mcp/{__version__}"},
                timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
                limits=limits,
                transport=transport,
            )
            for _ in range(API_POOLS)
        )
        self._turns = itertools.count()
        # Every image download.
        self._fetch = GuardedFetch(settings.base_url, f"mj-mcp/{__version__}", tls)

    def _http(self) -> httpx.AsyncClient:
        """The API's pool for the next request, in turn."""
        return self._pools[next(self._turns) % API_POOLS]

    def with_token(self, token: str) -> Upstream:
        """The same client billing another upstream token: its requests carry that token, and the
        shared ``Redactor`` masks it from now on, in every reply of every client."""
        view = copy.copy(self)
        view._auth = {"authorization": f"Bearer {token}"}
        view._owner = False
        self.redactor.add(token)
        return view

    async def aclose(self) -> None:
        if self._owner:
            await self._fetch.aclose()
            for pool in self._pools:
                await pool.aclose()

    # --- reading what upstream says ---------------------------------------------------------------

    def _decode(self, raw: bytes | str) -> Any:
        """Upstream's JSON, masked before decoding and after; None when it is not JSON."""
        r = self.redactor
        masked = r.bytes(raw) if isinstance(raw, bytes) else r.text(raw)
        try:
            return r.json(json.loads(masked)) if masked.strip() else None
        except ValueError:
            return None

    def _error(self, exc: errors.UpstreamError) -> errors.UpstreamError:
        """An error made of upstream's words, masked and cut to a length the model can afford."""
        self.redactor.exception(exc)
        exc.message = errors.clip(exc.message, MAX_MESSAGE)
        return exc

    def _error_from(self, resp: httpx.Response, raw: bytes) -> errors.UpstreamError:
        return self._error(error_from_response(resp.status_code, self.redactor.bytes(raw), dict(resp.headers)))

    # --- the retry policy -------------------------------------------------------------------------

    async def _backoff(self, attempt: int, retry_after: float | None = None) -> None:
        base = self.settings.retry_backoff_s * (2**attempt)
        delay = retry_after if retry_after is not None else base + random.uniform(0, base / 2)
        await anyio.sleep(min(delay, 30.0))

    async def _attempts(self, endpoint: Endpoint[Body, BaseModel], attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, sent again after a failure only as the endpoint's ``Retry`` allows."""
        tries = self.settings.retries + 1
        for n in range(tries):
            try:
                return await attempt()
            except errors.UpstreamError as exc:
                if n + 1 >= tries or not may_resend(endpoint.retry, exc):
                    raise
                log.warning("%s on %s; retrying (attempt %d)", exc.code, endpoint.name, n + 1)
                await self._backoff(n, exc.retry_after if isinstance(exc, errors.RateLimited) else None)
        raise AssertionError("unreachable: the last attempt raises")

    def _refused(self, exc: httpx.HTTPError) -> NotSent:
        return NotSent(f"cannot reach {self.settings.base_url}: {type(exc).__name__}")

    # --- endpoints run as tasks: a stream of replies --------------------------------------------

    async def run(
        self, endpoint: Endpoint[TaskBody, TaskUpdate], body: TaskBody, *, done: Callable[[TaskUpdate], bool]
    ) -> AsyncGenerator[TaskUpdate, None]:
        """Send ``body`` to an endpoint upstream runs as a task; yield each reply, ``done`` deciding
        which one is the last (what a task makes decides that, not the client).

        Raises an ``UpstreamError`` for a refused request, ``StreamInterrupted`` when the answer ends
        without a last reply (the caller then follows the task id it saw, or looks for the task).
        """
        resp = await self._attempts(endpoint, lambda: self._open(endpoint, body))
        try:
            async for update in self._updates(resp, done):
                yield update
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise StreamInterrupted(type(exc).__name__) from None
        finally:
            await resp.aclose()

    async def _open(self, endpoint: Endpoint[Body, BaseModel], body: Body) -> httpx.Response:
        """One attempt: the response with its headers read, or the error its status says."""
        accept = NDJSON if endpoint.streams else "application/json"
        http = self._http()
        request = http.build_request("POST", endpoint.path, json=body.wire(), headers={"accept": accept, **self._auth})
        try:
            resp = await http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._refused(exc) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # Sent, then lost: upstream may have started the job, so this attempt is not resent.
            raise StreamInterrupted(type(exc).__name__) from None
        if resp.status_code >= 400:
            try:
                raw = await resp.aread()
            finally:
                await resp.aclose()
            raise self._error_from(resp, raw)
        return resp

    async def _updates(self, resp: httpx.Response, done: Callable[[TaskUpdate], bool]) -> AsyncIterator[TaskUpdate]:
        if "ndjson" not in resp.headers.get("content-type", ""):
            # Upstream answered with one JSON object (an async ack, or a sync body): treat it as a line.
            raw = await resp.aread()
            payload = self._decode(raw)
            if not isinstance(payload, dict):
                raise errors.ServerError(
                    f"unreadable reply ({len(raw)} bytes)", code="bad_reply", status=resp.status_code
                )
            # Lenient: a dict always reads.
            upd = TaskUpdate.model_validate(payload)
            if upd.success is False and not upd.task_id:
                raise self._error(error_from_payload(payload, resp.status_code))
            yield upd
            if not done(upd):
                raise StreamInterrupted("single non-final reply")
            return
        final = False
        lines = resp.aiter_lines()
        async for line in lines:
            line = line.strip()
            if not line:
                # Blank lines are heartbeats or CRLF leftovers.
                continue
            payload = self._decode(line)
            if not isinstance(payload, dict):
                log.warning("skipped a malformed stream line (%d chars)", len(line))
                continue
            upd = TaskUpdate.model_validate(payload)
            yield upd
            if done(upd):
                final = True
                break
        if not final:
            raise StreamInterrupted("stream ended without a final line")
        # Read the body's end (upstream closes it right after the final line), so the connection goes
        # back to the pool instead of being closed half-read: a new TCP connection per call cost ~1 ms.
        with anyio.move_on_after(DRAIN_S):
            try:
                async for _ in lines:
                    pass
            except httpx.HTTPError:
                # The result is in; a broken tail only costs the connection.
                pass

    # --- endpoints that answer at once ------------------------------------------------------------

    async def ask(self, endpoint: Endpoint[Body, R], body: Body) -> R:
        """Send ``body`` to an endpoint that answers at once; its reply, read leniently."""
        payload = await self._attempts(endpoint, lambda: self._json(endpoint, body))
        if payload.get("success") is False:
            raise self._error(error_from_payload(payload, 200))
        try:
            return endpoint.reply.model_validate(payload)
        except ValidationError as exc:
            raise UnreadableReply(
                f"upstream's {endpoint.name} reply is unreadable ({unreadable_fields(exc)})"
            ) from None

    async def _json(self, endpoint: Endpoint[Body, BaseModel], body: Body) -> dict[str, Any]:
        """One attempt at a JSON endpoint: its body as an object, or the error it stands for."""
        try:
            resp = await self._http().post(
                endpoint.path, json=body.wire(), headers={"accept": "application/json", **self._auth}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._refused(exc) from None
        except httpx.TransportError as exc:
            raise errors.ConnectionLost(f"{endpoint.name} failed: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise self._error_from(resp, resp.content)
        payload = self._decode(resp.content)
        if not isinstance(payload, dict):
            raise UnreadableReply(
                f"the {endpoint.name} reply is not a JSON object ({len(resp.content)} bytes)", status=resp.status_code
            )
        return payload

    async def retrieve(self, task_id: str) -> UpstreamTask | None:
        """The task, or None when upstream does not know the id (it answers ``{}``)."""
        payload = await self._attempts(RETRIEVE, lambda: self._json(RETRIEVE, RetrieveBody(id=task_id)))
        if not payload or "id" not in payload:
            return None
        try:
            return UpstreamTask.model_validate(payload)
        except ValidationError as exc:
            log.warning("skipped an unreadable task (%s)", unreadable_fields(exc))
            raise UnreadableReply(f"upstream's record of the task is unreadable ({unreadable_fields(exc)})") from None

    async def retrieve_batch(self, query: RetrieveBatchBody) -> list[UpstreamTask]:
        """A page of tasks, newest first; a task that cannot be read is left out (and logged)."""
        return (await self.ask(RETRIEVE_BATCH, query)).items

    async def fetch_image(
        self, url: str, *, timeout: float, max_bytes: int = 64 << 20, head: int | None = None
    ) -> tuple[bytes, str | None]:
        """GET an image (a CDN URL, usually another host): (bytes, content type), by the rules of
        ``guard.py``: https at public addresses, or the API's own origin, which alone sees the token. The
        embedded simulator's fixed origin is rewritten to the live simulator first (``_from_alias``).
        With ``head``, only the first ``head`` bytes: enough for a picture's header (its size)."""
        url = _from_alias(url, self.api_alias, self.settings.base_url)
        return await self._fetch.get(url, auth=self._auth, timeout=timeout, max_bytes=max_bytes, head=head)

    async def reachable(self, timeout: float) -> bool:
        """Whether the API answers (any reply below 500): one task lookup of an id that names nothing,
        which costs nothing and is not retried."""
        try:
            resp = await self._http().post(
                RETRIEVE.path,
                json=RetrieveBody(id="mj-mcp-readyz").wire(),
                headers={"accept": "application/json"},
                timeout=timeout,
            )
        except httpx.HTTPError:
            return False
        return resp.status_code < 500
