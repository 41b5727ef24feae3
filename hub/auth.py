"""Tokens: verifying the JWTs that say who a caller is, and issuing development tokens.

Verification sits behind TokenVerifier so that RS256 with a JWKS endpoint can be added beside
HS256 without touching the routes or the socket server.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from ledger.accounts import DEFAULT_APP, Role


class AuthError(Exception):
    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role
    name: str | None = None  # the optional `name` claim: shown on creators' tip alerts
    email: str | None = None  # the optional `email` claim: where receipts are sent
    app_id: str = DEFAULT_APP  # the app whose secret signed the token
    # When the token expires (its `exp`); not part of who the caller is.
    expires_at: int = field(default=0, compare=False)


# No control character in anything a token says of its user, nor a lone surrogate: they end up
# in PostgreSQL, in logs and on creators' screens.
CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
DEFAULT_MAX_LIFETIME = 24 * 3600
VERIFIED_KEPT = 10_000  # verified tokens a process remembers (about 1 KiB each)


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Principal: ...


class HS256Verifier:
    algorithm = "HS256"

    def __init__(
        self,
        secret: str,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        max_lifetime: int = DEFAULT_MAX_LIFETIME,
        app_id: str = DEFAULT_APP,
    ) -> None:
        self._secret = secret
        self._app_id = app_id
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime
        # Tokens already verified, until their `exp`: a client sends the same token with every
        # request and every reconnect. Only what passed is kept, and nothing of it can turn
        # bad before `exp` (the lifetime check only grows easier with time).
        self._verified: dict[str, Principal] = {}

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known.expires_at:
                return known
            del self._verified[token]
        principal = self._verify(token)
        if len(self._verified) >= VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = principal
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["sub", "exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "the token has expired") from None
        except jwt.InvalidSignatureError:
            raise AuthError("invalid_token", "the token's signature is not valid") from None
        except jwt.PyJWTError as exc:
            raise AuthError("invalid_token", f"the token is not valid: {exc}") from None
        # PyJWT checked that both read as integers (it reads them with int() too), and that
        # `exp` is ahead.
        expires_at = int(claims["exp"])
        issued_at = int(claims["iat"]) if "iat" in claims else None
        if expires_at - time.time() > self._max_lifetime or (
            issued_at is not None and expires_at - issued_at > self._max_lifetime
        ):
            raise AuthError(
                "invalid_token",
                f"the token lives longer than this hub accepts ({self._max_lifetime} s)",
            )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 255 or CONTROL.search(sub):
            raise AuthError(
                "invalid_token", "the token's sub must be 1-255 characters, none a control"
            )
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise AuthError(
                "invalid_token", "the token's role must be fan, creator or admin"
            ) from None
        name = claims.get("name")
        if name is not None and (
            not isinstance(name, str) or len(name) > 80 or CONTROL.search(name)
        ):
            raise AuthError(
                "invalid_token", "the token's name must be at most 80 characters, none a control"
            )
        email = claims.get("email")
        if email is not None and (
            not isinstance(email, str)
            or len(email) > 254
            or "@" not in email
            or CONTROL.search(email)
            or " " in email
        ):
            raise AuthError("invalid_token", "the token's email is not an address")
        return Principal(
            user_id=sub,
            role=role,
            name=name or None,
            email=email or None,
            app_id=self._app_id,
            expires_at=expires_at,
        )


def issue_token(
    secret: str,
    sub: str,
    role: Role,
    ttl: int,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    name: str | None = None,
    email: str | None = None,
) -> str:
    """A signed HS256 token for development and tests."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": sub, "role": role.value, "iat": now, "exp": now + ttl}
    if name:
        claims["name"] = name
    if email:
        claims["email"] = email
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=HS256Verifier.algorithm)


def bearer_or_none(request: Any) -> str:
    """The bearer credential of a request, or "" (no or another Authorization)."""
    scheme, _, credential = (request.headers.get("authorization") or "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing_token", "send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("invalid_token", "the Authorization header must be 'Bearer <token>'")
    return token.strip()
