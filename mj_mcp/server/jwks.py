"""The OAuth issuer's signing keys (its JWKS), fetched, cached and refreshed within bounds.

The keys come from ``MJ_MCP_OAUTH_JWKS_URL``, else from the issuer's metadata (RFC 8414
``/.well-known/oauth-authorization-server``, then OpenID Connect discovery), whose ``issuer`` must be
the configured one. Every fetch is HTTPS (plain HTTP only to a loopback issuer, for tests and
sidecars), follows no redirect, and is bounded in time and size. Keys are kept for ``TTL_S``; a token
signed with a key id not in the set fetches the set again (the issuer rotated its keys), at most once
every ``REFRESH_MIN_S``, so tokens with made-up key ids cannot make this server hammer the issuer.
Only asymmetric signing keys are kept: a symmetric (``oct``) key would let anyone who read the JWKS
sign tokens.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx

from .http import is_loopback

if TYPE_CHECKING:
    import jwt

log = logging.getLogger("mj_mcp.auth")

FETCH_TIMEOUT_S = 5.0
MAX_BYTES = 256 << 10  # a JWKS of a few keys is a few KB
MAX_KEYS = 64
TTL_S = 3600.0
REFRESH_MIN_S = 30.0


def https_or_loopback(url: str) -> bool:
    """Whether ``url`` may be fetched: HTTPS, or plain HTTP to a loopback address."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))


class JwksError(Exception):
    """The keys could not be fetched or read; says why, never quoting a token."""


async def fetch_json(url: str, *, timeout: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    if not https_or_loopback(url):
        raise JwksError(f"{url[:200]} is not https (plain http is allowed to a loopback issuer only)")
    try:
        with anyio.fail_after(timeout):
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
                async with http.stream("GET", url, headers={"accept": "application/json"}) as resp:
                    if resp.status_code != 200:
                        raise JwksError(f"GET {url[:200]}: HTTP {resp.status_code}")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise JwksError(f"GET {url[:200]}: larger than {max_bytes} bytes")
    except TimeoutError:
        raise JwksError(f"GET {url[:200]}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise JwksError(f"GET {url[:200]}: {type(exc).__name__}") from None
    try:
        doc = json.loads(bytes(body))
    except ValueError:
        raise JwksError(f"GET {url[:200]}: not JSON") from None
    if not isinstance(doc, dict):
        raise JwksError(f"GET {url[:200]}: not a JSON object")
    return doc


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be: RFC 8414 (path after the well-known part), then OIDC."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    base = f"{parts.scheme}://{parts.netloc}"
    return [f"{base}/.well-known/oauth-authorization-server{path}", f"{base}{path}/.well-known/openid-configuration"]


def signing_keys(doc: dict[str, Any]) -> dict[str | None, jwt.PyJWK]:
    # PyJWT (and the cryptography under it) only where OAuth is set up: start-up does not pay for it.
    import jwt

    keys: dict[str | None, jwt.PyJWK] = {}
    for data in doc.get("keys", [])[:MAX_KEYS] if isinstance(doc.get("keys"), list) else []:
        if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC", "OKP") or data.get("use", "sig") != "sig":
            continue
        try:
            keys[data.get("kid") if isinstance(data.get("kid"), str) else None] = jwt.PyJWK(data)
        except jwt.PyJWTError as exc:
            log.warning("skipped an unusable key in the issuer's JWKS: %s", type(exc).__name__)
    return keys


class Jwks:
    def __init__(self, issuer: str, url: str | None = None, *, refresh_min_s: float = REFRESH_MIN_S) -> None:
        self.issuer = issuer
        self.url = url  # None: found in the issuer's metadata
        self.refresh_min_s = refresh_min_s
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched = -float("inf")  # monotonic time of the last fetch, successful or not
        self._lock = anyio.Lock()
        self.fetches = 0  # how many times the set was fetched (for tests and logs)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The signing key ``kid`` names (with no kid: the set's only key), fetching the set when it is
        stale or does not have it (rate-limited). None when there is no such key."""
        if self._due(kid):
            async with self._lock:  # one fetch for a burst of tokens
                if self._due(kid):  # unless a fetch done meanwhile settled it
                    await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _due(self, kid: str | None) -> bool:
        age = time.monotonic() - self._fetched
        known = kid in self._keys or (kid is None and len(self._keys) == 1)
        return age > TTL_S or (not known and age >= self.refresh_min_s)

    async def _refresh(self) -> None:
        self._fetched = time.monotonic()
        self.fetches += 1
        try:
            if self.url is None:
                self.url = await self._discover()
            self._keys = signing_keys(await fetch_json(self.url))
        except JwksError as exc:  # keep the keys we had: an issuer's outage must not lock everyone out
            log.warning("the issuer's keys could not be fetched: %s", exc)

    async def _discover(self) -> str:
        problems = []
        for url in metadata_urls(self.issuer):
            try:
                doc = await fetch_json(url)
            except JwksError as exc:
                problems.append(str(exc))
                continue
            if doc.get("issuer") != self.issuer:
                problems.append(f"{url[:200]} names another issuer")
                continue
            jwks_uri = doc.get("jwks_uri")
            if isinstance(jwks_uri, str) and https_or_loopback(jwks_uri):
                return jwks_uri
            problems.append(f"{url[:200]} has no usable jwks_uri")
        raise JwksError("; ".join(problems) + " (or set MJ_MCP_OAUTH_JWKS_URL)")
