"""A test OAuth issuer: real keys, real signed JWTs, its metadata and JWKS served over loopback HTTP.

Serve ``Issuer().app()`` with ``support.ThreadedApp``, set ``issuer.url`` to its base URL, then
``mint(...)`` access tokens. ``rotate()`` adds a new signing key (a new kid in the JWKS);
``fetches`` counts the JWKS downloads.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class Issuer:
    def __init__(self) -> None:
        self.url = ""  # set once served
        self.keys: dict[str, tuple[object, str]] = {}  # kid -> (private key, alg)
        self.kid = self._add(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
        self.fetches = 0
        self.jwks_body: bytes | None = None  # set to serve something else at /jwks

    def _add(self, key: object, alg: str) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = (key, alg)
        return kid

    def rotate(self) -> str:
        """A new signing key (EC P-256) becomes the one ``mint`` uses; the old one stays published."""
        self.kid = self._add(ec.generate_private_key(ec.SECP256R1()), "ES256")
        return self.kid

    def jwks(self) -> dict:
        keys = []
        for kid, (key, alg) in self.keys.items():
            algo = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
            jwk = algo.to_jwk(key.public_key(), as_dict=True)
            keys.append(jwk | {"kid": kid, "alg": alg, "use": "sig"})
        return {"keys": keys}

    def mint(
        self,
        sub: str,
        *,
        aud: str,
        scope: str = "mj",
        lifetime: float = 300,
        iss: str | None = None,
        key: object | None = None,
        kid: str | None = None,
        **claims,
    ) -> str:
        """A signed access token; ``key`` signs with another key under the published ``kid``."""
        kid = kid or self.kid
        own, alg = self.keys[kid]
        now = int(time.time())
        payload = {
            "iss": iss or self.url,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "exp": now + int(lifetime),
            "scope": scope,
            "client_id": "test-client",
        } | claims
        return jwt.encode(payload, key or own, algorithm=alg, headers={"kid": kid})

    def app(self) -> Starlette:
        async def metadata(request):
            return JSONResponse(
                {
                    "issuer": self.url,
                    "jwks_uri": f"{self.url}/jwks",
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "response_types_supported": ["code"],
                }
            )

        async def keys(request):
            self.fetches += 1
            body = self.jwks_body if self.jwks_body is not None else json.dumps(self.jwks()).encode()
            return Response(body, media_type="application/json")

        return Starlette(routes=[Route("/.well-known/oauth-authorization-server", metadata), Route("/jwks", keys)])
