"""The AceDataCloud Midjourney HTTP client: one pooled ``httpx.AsyncClient``; knows nothing of MCP.

It submits with ndjson streaming, retrieves tasks, and turns every reply into either a ``TaskUpdate``
or an ``errors.UpstreamError``. A submit that may have reached upstream is never retried blindly
(it could bill twice): only a 429 rejection or a refused connection is retried. Task retrieval is
read-only and retried freely.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import httpx

from .. import errors
from ..errors import FetchFailed, StreamInterrupted
from ..settings import Settings
from .models import TaskRecord, TaskUpdate

log = logging.getLogger("mj_mcp.upstream")

IMAGINE = "/midjourney/imagine"
TASKS = "/midjourney/tasks"
DRAIN_S = 1.0  # longest wait for the end of a stream after its final line
MIN_SECRET = 8  # shorter tokens are test stand-ins; masking them would garble every message


class Upstream:
    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        headers = {"content-type": "application/json", "user-agent": "mj-mcp/0.1"}
        token = settings.api_token.get_secret_value() if settings.api_token else ""
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._secret = token.encode() if len(token) >= MIN_SECRET else b""  # masking "t" would mangle text
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _clean(self, raw: bytes) -> bytes:
        """Upstream's words without our token in them (an error may quote the request)."""
        return raw.replace(self._secret, b"***") if self._secret and self._secret in raw else raw

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
                    "POST", IMAGINE, json=body, headers={"accept": "application/x-ndjson"}
                ) as resp:
                    if resp.status_code >= 400:
                        raw = self._clean(await resp.aread())
                        exc = errors.from_response(resp.status_code, raw, dict(resp.headers))
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
                raise errors.ConnectionLost(f"cannot reach {self.settings.base_url}: {type(exc).__name__}") from None
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise StreamInterrupted(type(exc).__name__) from None

    async def _lines(self, resp: httpx.Response) -> AsyncIterator[TaskUpdate]:
        ctype = resp.headers.get("content-type", "")
        if "ndjson" not in ctype:
            # Upstream answered with one JSON object (an async ack, or a sync body): treat it as a line.
            raw = self._clean(await resp.aread())
            try:
                payload = json.loads(raw) if raw.strip() else None
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                raise errors.ServerError(f"unreadable reply ({len(raw)} bytes)", code="bad_reply", status=resp.status_code)
            upd = TaskUpdate.model_validate(payload)
            if upd.success is False and not upd.task_id:
                raise errors.from_payload(payload, resp.status_code)
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
            try:
                payload = json.loads(self._clean(line.encode()))
                upd = TaskUpdate.model_validate(payload)
            except ValueError:
                log.warning("skipped a malformed stream line (%d chars)", len(line))
                continue
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
        """GET an image (a CDN URL, usually another host): (bytes, content type). The API token goes
        only to the API's own origin: a third-party host never sees the Authorization header."""
        try:
            request = self._http.build_request("GET", url, timeout=httpx.Timeout(timeout),
                                               headers={"accept": "image/*"})
        except httpx.InvalidURL:
            raise FetchFailed("bad image URL") from None
        if request.url.scheme not in ("http", "https"):
            raise FetchFailed("bad image URL")
        api = self._http.base_url
        if (request.url.scheme, request.url.host, request.url.port) != (api.scheme, api.host, api.port):
            request.headers.pop("authorization", None)
        request.headers.pop("content-type", None)
        try:
            with anyio.fail_after(timeout):
                resp = await self._http.send(request, stream=True, follow_redirects=True)
                try:
                    if resp.status_code >= 400:
                        raise FetchFailed(f"HTTP {resp.status_code}")
                    chunks, size = [], 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchFailed(f"larger than {max_bytes >> 20} MB")
                        chunks.append(chunk)
                finally:
                    await resp.aclose()
        except TimeoutError:
            raise FetchFailed(f"no image within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(type(exc).__name__) from None
        return b"".join(chunks), resp.headers.get("content-type")

    async def retrieve(self, task_id: str) -> TaskRecord | None:
        """The task record, or None when upstream does not know the id (it answers ``{}``)."""
        payload = await self._tasks({"action": "retrieve", "id": task_id})
        if not payload or "id" not in payload:
            return None
        return TaskRecord.model_validate(payload)

    async def retrieve_batch(self, **query: Any) -> list[TaskRecord]:
        payload = await self._tasks({"action": "retrieve_batch", **query})
        return [TaskRecord.model_validate(i) for i in payload.get("items", []) if isinstance(i, dict) and "id" in i]

    async def _tasks(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /tasks; read-only, so every transient failure is retried."""
        last: Exception | None = None
        for attempt in range(self.settings.retries + 1):
            try:
                resp = await self._http.post(TASKS, json=body, headers={"accept": "application/json"})
            except httpx.TransportError as exc:
                last = errors.ConnectionLost(f"task lookup failed: {type(exc).__name__}")
            else:
                if resp.status_code < 400:
                    try:
                        payload = json.loads(self._clean(resp.content))
                    except ValueError:
                        payload = None
                    if isinstance(payload, dict):
                        return payload
                    last = errors.ServerError("unreadable task record", code="bad_reply", status=resp.status_code)
                else:
                    last = errors.from_response(resp.status_code, self._clean(resp.content), dict(resp.headers))
                    if not isinstance(last, (errors.RateLimited, errors.ServerError, errors.UpstreamTimeout)):
                        raise last
            if attempt < self.settings.retries:
                await self._backoff(attempt, getattr(last, "retry_after", None))
        assert last is not None
        raise last
