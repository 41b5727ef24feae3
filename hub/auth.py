"""Tokens: verifying the JWTs that say who a caller is, and issuing development tokens.

Verification sits behind TokenVerifier so that RS256 with a JWKS endpoint can be added beside
HS256 without touching the routes or the socket server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import jwt

from ledger.accounts import Role


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


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Principal: ...


class HS256Verifier:
    algorithm = "HS256"

    def __init__(
        self, secret: str, *, issuer: str | None = None, audience: str | None = None
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
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
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 255:
            raise AuthError("invalid_token", "the token's sub must be a string of 1-255 chars")
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise AuthError(
                "invalid_token", "the token's role must be fan, creator or admin"
            ) from None
        name = claims.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 80):
            raise AuthError("invalid_token", "the token's name must be a string of at most 80")
        email = claims.get("email")
        if email is not None and (
            not isinstance(email, str) or len(email) > 254 or "@" not in email
        ):
            raise AuthError("invalid_token", "the token's email is not an address")
        return Principal(user_id=sub, role=role, name=name or None, email=email or None)


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


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing_token", "send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("invalid_token", "the Authorization header must be 'Bearer <token>'")
    return token.strip()
