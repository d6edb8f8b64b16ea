"""The AceDataCloud Midjourney HTTP client: one pooled ``httpx.AsyncClient``; knows nothing of MCP.

It submits with ndjson streaming, retrieves tasks, and turns every reply into either a ``TaskUpdate``
or an ``errors.UpstreamError``. A submit that may have reached upstream is never retried blindly
(it could bill twice): only a 429 rejection or a refused connection is retried. Task retrieval is
read-only and retried freely.

Images are downloaded through ``guard.py``, which checks every URL and every redirect (upstream names
them, and a reply is data, not an order) and lets the token go only to the API's own origin.

Everything upstream says passes through the ``Redactor`` (``core/redact.py``) before anything else
reads it: the raw bytes before decoding, the decoded strings after, and the errors made of them,
so a token upstream quotes back, in any escaping, reaches no result, error or log line.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import httpx

from pydantic import ValidationError

from .. import errors
from ..core.redact import Redactor
from ..errors import StreamInterrupted, UnreadableReply
from .._version import __version__
from ..settings import Settings
from .guard import GuardedFetch
from .models import MAX_MESSAGE, TaskRecord, TaskUpdate

log = logging.getLogger("mj_mcp.upstream")

IMAGINE = "/midjourney/imagine"
TASKS = "/midjourney/tasks"
DRAIN_S = 1.0  # longest wait for the end of a stream after its final line


def _fields(exc: ValidationError) -> str:
    """Which fields did not fit, by name: a validation error's own text quotes the values."""
    return ", ".join(sorted({".".join(map(str, e["loc"])) or "record" for e in exc.errors(include_input=False)}))


def _from_alias(url: str, alias: str | None, base_url: str) -> str:
    """``url`` with the origin ``alias`` (exactly, followed by a path) replaced by ``base_url``."""
    if alias and url.startswith(f"{alias}/"):
        return base_url.rstrip("/") + url[len(alias):]
    return url


class Upstream:
    """The client for one upstream token: the operator's (``ACEDATACLOUD_API_TOKEN``), or through
    ``with_token`` a principal's own. All of them share one connection pool and one ``Redactor``."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None,
                 api_alias: str | None = None) -> None:
        self.settings = settings
        # The embedded simulator names its images under a fixed origin that resolves nowhere, because
        # its port changes with every start and stored records keep the URLs: fetched from base_url.
        self.api_alias = api_alias
        token = settings.api_token.get_secret_value() if settings.api_token else ""
        self._auth = {"authorization": f"Bearer {token}"} if token else {}  # sent per request, to the API only
        self.redactor = Redactor([token])  # the server also installs its log filter on its handlers
        self._owner = True  # closes the pool; a with_token view does not
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={"content-type": "application/json", "user-agent": f"mj-mcp/{__version__}"},
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
            transport=transport,
        )
        self._fetch = GuardedFetch(self._http, f"mj-mcp/{__version__}")  # every image download

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
            await self._http.aclose()

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
        return self._error(errors.from_response(resp.status_code, self.redactor.bytes(raw), dict(resp.headers)))

    async def _backoff(self, attempt: int, retry_after: float | None = None) -> None:
        base = self.settings.retry_backoff_s * (2**attempt)
        delay = retry_after if retry_after is not None else base + random.uniform(0, base / 2)
        await anyio.sleep(min(delay, 30.0))

    async def submit(self, body: dict[str, Any]) -> AsyncGenerator[TaskUpdate, None]:
        """POST /imagine with ndjson streaming; yield each parsed line, the final one last.

        Raises an ``UpstreamError`` for a refused request, ``StreamInterrupted`` when the stream ends
        without a final line (the caller then follows the task id it saw).
        """
        for attempt in range(self.settings.retries + 1):
            try:
                async with self._http.stream(
                    "POST", IMAGINE, json=body, headers={"accept": "application/x-ndjson", **self._auth}
                ) as resp:
                    if resp.status_code >= 400:
                        exc = self._error_from(resp, await resp.aread())
                        if isinstance(exc, errors.RateLimited) and attempt < self.settings.retries:
                            log.warning("429 on submit; retrying (attempt %d)", attempt + 1)
                            await self._backoff(attempt, exc.retry_after)
                            continue  # rejected, so nothing was started: safe to resend
                        raise exc
                    async for update in self._lines(resp):
                        yield update
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Refused before any byte was sent: provably nothing started upstream.
                if attempt < self.settings.retries:
                    log.warning("connection refused on submit; retrying (attempt %d)", attempt + 1)
                    await self._backoff(attempt)
                    continue
                raise self._error(errors.ConnectionLost(
                    f"cannot reach {self.settings.base_url}: {type(exc).__name__}")) from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise StreamInterrupted(type(exc).__name__) from None

    async def _lines(self, resp: httpx.Response) -> AsyncIterator[TaskUpdate]:
        ctype = resp.headers.get("content-type", "")
        if "ndjson" not in ctype:
            # Upstream answered with one JSON object (an async ack, or a sync body): treat it as a line.
            raw = await resp.aread()
            payload = self._decode(raw)
            if not isinstance(payload, dict):
                raise errors.ServerError(f"unreadable reply ({len(raw)} bytes)", code="bad_reply", status=resp.status_code)
            upd = TaskUpdate.model_validate(payload)  # lenient: a dict always reads
            if upd.success is False and not upd.task_id:
                raise self._error(errors.from_payload(payload, resp.status_code))
            yield upd
            if not upd.final:
                raise StreamInterrupted("single non-final reply")
            return
        final = False
        lines = resp.aiter_lines()
        async for line in lines:
            line = line.strip()
            if not line:
                continue  # blank lines are heartbeats or CRLF leftovers
            payload = self._decode(line)
            if not isinstance(payload, dict):
                log.warning("skipped a malformed stream line (%d chars)", len(line))
                continue
            upd = TaskUpdate.model_validate(payload)  # lenient: a dict always reads
            yield upd
            if upd.final:
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
                pass  # the result is in; a broken tail only costs the connection

    async def fetch_image(self, url: str, *, timeout: float, max_bytes: int = 64 << 20) -> tuple[bytes, str | None]:
        """GET an image (a CDN URL, usually another host): (bytes, content type), by the rules of
        ``guard.py``: https at public addresses, or the API's own origin, which alone sees the token. The
        embedded simulator's fixed origin is rewritten to the live simulator first (``_from_alias``)."""
        url = _from_alias(url, self.api_alias, self.settings.base_url)
        return await self._fetch.get(url, auth=self._auth, timeout=timeout, max_bytes=max_bytes)

    async def reachable(self, timeout: float) -> bool:
        """Whether the API answers (any reply below 500): one task lookup of an id that names nothing,
        which costs nothing and is not retried."""
        try:
            resp = await self._http.post(TASKS, json={"action": "retrieve", "id": "mj-mcp-readyz"},
                                         headers={"accept": "application/json"}, timeout=timeout)
        except httpx.HTTPError:
            return False
        return resp.status_code < 500

    async def retrieve(self, task_id: str) -> TaskRecord | None:
        """The task record, or None when upstream does not know the id (it answers ``{}``)."""
        payload = await self._tasks({"action": "retrieve", "id": task_id})
        if not payload or "id" not in payload:
            return None
        try:
            return TaskRecord.model_validate(payload)
        except ValidationError as exc:
            log.warning("skipped an unreadable task record (%s)", _fields(exc))
            raise UnreadableReply(f"upstream's record of the task is unreadable ({_fields(exc)})") from None

    async def retrieve_batch(self, **query: Any) -> list[TaskRecord]:
        payload = await self._tasks({"action": "retrieve_batch", **query})
        items = payload.get("items")
        records = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "id" in item:
                try:
                    records.append(TaskRecord.model_validate(item))
                except ValidationError as exc:
                    log.warning("skipped an unreadable task record (%s)", _fields(exc))
        return records

    async def _tasks(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /tasks; read-only, so every transient failure is retried."""
        last: Exception | None = None
        for attempt in range(self.settings.retries + 1):
            try:
                resp = await self._http.post(TASKS, json=body, headers={"accept": "application/json", **self._auth})
            except httpx.TransportError as exc:
                last = errors.ConnectionLost(f"task lookup failed: {type(exc).__name__}")
            else:
                if resp.status_code < 400:
                    payload = self._decode(resp.content)
                    if isinstance(payload, dict):
                        return payload
                    last = UnreadableReply(f"the task lookup's reply is not a JSON object ({len(resp.content)} bytes)",
                                           status=resp.status_code)
                else:
                    last = self._error_from(resp, resp.content)
                    if not isinstance(last, (errors.RateLimited, errors.ServerError, errors.UpstreamTimeout)):
                        raise last
            if attempt < self.settings.retries:
                await self._backoff(attempt, getattr(last, "retry_after", None))
        assert last is not None
        raise last
