"""Authentication of a shared HTTP server: who is calling, from a bearer token.

Two modes, which may be combined (say, people through OAuth and a CI job with a static token):

- **Static tokens**: the team file (``MJ_MCP_AUTH_TOKENS_FILE``, ``principals.py``) maps token
  hashes to principals.
- **OAuth 2.1 resource server**, per the MCP authorization spec: a JWT access token signed by the
  issuer (``MJ_MCP_OAUTH_ISSUER``; its keys in ``jwks.py``), for this server (``aud`` is
  ``MJ_MCP_RESOURCE_URL``), unexpired, with the scopes ``MJ_MCP_OAUTH_SCOPES`` asks for. The
  protected-resource metadata (RFC 9728) names the issuer.

The MCP SDK does the HTTP part: its middleware answers 401 with ``WWW-Authenticate: Bearer
resource_metadata=...`` and 403 for a missing scope, serves the metadata, binds each handshake-era
session to the principal that opened it, and hands the verified token to every request
(``get_access_token``). This module gives it the verifier, whose tokens carry the ``Principal``, and
never keeps a client's token: ``AccessToken.token`` holds a short fingerprint of it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from pydantic import ConfigDict

from ..errors import SettingsError
from ..limits import Limits
from ..principals import Principal, Principals
from ..settings import Settings
from .jwks import Jwks, JwksError, https_or_loopback

log = logging.getLogger("mj_mcp.auth")

MAX_TOKEN_CHARS = 8192  # a JWT with many claims is 1-2 KB; anything longer is refused unread
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_S = 30  # clock skew tolerated on exp / nbf / iat
PRM_ROOT = "/.well-known/oauth-protected-resource"
# The SDK's AuthSettings wants an issuer even when no OAuth server is involved; with static tokens only
# it is published nowhere (no metadata route is made without a resource URL).
NO_ISSUER = "https://static-tokens.invalid"


class PrincipalToken(AccessToken):
    """A verified bearer token, as the SDK hands it to each request: who the caller is."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    principal: Principal


def fingerprint(token: str) -> str:
    """What is kept of a client's token: enough to tell two apart in a debugger, nothing to reuse."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def caller() -> Principal | None:
    """The authenticated principal of the current request; None on stdio and unauthenticated HTTP."""
    token = get_access_token()
    return token.principal if isinstance(token, PrincipalToken) else None


class JwtVerifier:
    """An OAuth access token in JWT form (RFC 9068), checked with PyJWT against the issuer's keys."""

    def __init__(self, issuer: str, audience: str, jwks: Jwks) -> None:
        self.issuer = issuer
        self.audiences = [audience.rstrip("/"), audience.rstrip("/") + "/"]  # either spelling of the URL
        self.jwks = jwks

    async def claims(self, token: str) -> dict[str, Any] | None:
        """The token's claims when its signature, issuer, audience and times hold; None (logged
        without the token) when not."""
        # PyJWT (and the cryptography under it) only where OAuth is set up: start-up does not pay for it.
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in ALGORITHMS:  # never "none" nor HS*: only the issuer's public keys verify
                raise jwt.InvalidAlgorithmError(f"algorithm {str(alg)[:16]!r} not accepted")
            kid = header.get("kid")
            key = await self.jwks.key(kid if isinstance(kid, str) else None)
            if key is None:
                raise jwt.InvalidKeyError("no key of the issuer has this token's kid")
            return jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audiences,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, JwksError, ValueError, TypeError, KeyError) as exc:  # a 401, never a 500
            log.info(
                "bearer token refused: %s", type(exc).__name__ if not isinstance(exc, jwt.InvalidKeyError) else exc
            )
            return None


def scopes_of(claims: dict[str, Any]) -> list[str]:
    """``scope`` (RFC 9068: space-separated) or ``scp`` (a list, as some issuers write it)."""
    scope, scp = claims.get("scope"), claims.get("scp")
    if isinstance(scope, str):
        return scope.split()
    if isinstance(scp, list):
        return [s for s in scp if isinstance(s, str)]
    return scp.split() if isinstance(scp, str) else []


class Verifier(TokenVerifier):
    """The SDK's seam: a bearer token in, a ``PrincipalToken`` out, or None (401)."""

    def __init__(self, principals: Principals, jwt_verifier: JwtVerifier | None, scopes: list[str]) -> None:
        self.principals = principals
        self.jwt = jwt_verifier
        self.scopes = scopes

    async def verify_token(self, token: str) -> AccessToken | None:
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        principal = self.principals.by_token(token)
        if principal is not None:  # the operator listed it: it may do what a scoped OAuth token may
            return PrincipalToken(
                token=fingerprint(token),
                client_id=principal.id,
                subject=principal.id,
                scopes=list(self.scopes),
                principal=principal,
            )
        if self.jwt is None or token.count(".") != 2:
            return None
        claims = await self.jwt.claims(token)
        if claims is None or not isinstance(claims.get("sub"), str) or not claims["sub"]:
            return None
        principal = self.principals.by_subject(claims["sub"])
        client = claims.get("client_id") or claims.get("azp")
        # The SDK's bearer middleware refuses a token whose expires_at is past, with no leeway of its own:
        # the skew PyJWT allowed on exp above must reach it too, or a token is refused at exp after all.
        expires_at = int(claims["exp"]) + LEEWAY_S
        return PrincipalToken(
            token=fingerprint(token),
            client_id=str(client or principal.id)[:255],
            subject=claims["sub"],
            scopes=scopes_of(claims),
            expires_at=expires_at,
            claims={"iss": claims["iss"]},
            principal=principal,
        )


@dataclass
class Authentication:
    """What a server with authentication is built with: the principals, and the SDK's pieces."""

    principals: Principals
    settings: AuthSettings
    verifier: Verifier

    def publish_metadata(self, server: MCPServer[Any]) -> None:
        """RFC 9728 metadata at the root well-known path too: the SDK serves it at the path-suffixed one
        (``/.well-known/oauth-protected-resource/mcp``), and some clients look only at the root."""
        url = self.settings.resource_server_url
        if url is None:
            return
        for route in create_protected_resource_routes(url, [self.settings.issuer_url], self.settings.required_scopes):
            if route.path != PRM_ROOT:
                server.custom_route(PRM_ROOT, methods=["GET", "OPTIONS"])(route.endpoint)


def authentication(settings: Settings, env: dict[str, str] | None = None) -> Authentication | None:
    """The server's authentication, from its settings; None when none is configured (the server then
    serves the local user only). ``SettingsError`` for a team file or an OAuth setting that will not do."""
    if settings.auth_tokens_file is None and settings.oauth_issuer is None:
        return None
    defaults = Limits(running=settings.limit_running, daily=settings.limit_daily)
    principals = Principals(defaults, settings.auth_tokens_file, env)
    jwt_verifier = None
    if settings.oauth_issuer is not None:
        issuer, resource = settings.oauth_issuer, settings.resource_url
        if resource is None:
            raise SettingsError(
                "MJ_MCP_OAUTH_ISSUER needs MJ_MCP_RESOURCE_URL: this server's URL as clients reach "
                "it (https://host/mcp), the audience its tokens are issued for"
            )
        for var, url in (
            ("MJ_MCP_OAUTH_ISSUER", issuer),
            ("MJ_MCP_OAUTH_JWKS_URL", settings.oauth_jwks_url),
            ("MJ_MCP_RESOURCE_URL", resource),
        ):
            if url is not None and not https_or_loopback(url):
                raise SettingsError(f"{var}={url[:120]} must be https (plain http only on a loopback address)")
        jwt_verifier = JwtVerifier(issuer, resource, Jwks(issuer, settings.oauth_jwks_url))
    scopes = list(settings.oauth_scopes)
    # Strings, not URL objects: AuthSettings keeps a path-less issuer without a trailing slash, and
    # the metadata must name it exactly as its tokens' iss does (RFC 8414 compares strings).
    auth = AuthSettings.model_validate(
        {
            "issuer_url": settings.oauth_issuer or NO_ISSUER,
            "resource_server_url": settings.resource_url if jwt_verifier is not None else None,
            "required_scopes": scopes or None,
            "validate_token_resource": False,  # the JWT's aud is checked here; static tokens have none
        }
    )
    return Authentication(principals, auth, Verifier(principals, jwt_verifier, scopes))
