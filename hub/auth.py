"""Tokens: verifying the JWTs that say who a caller is, and issuing development tokens.

Verification sits behind TokenVerifier so that RS256 with a JWKS endpoint can be added beside
HS256 without touching the routes or the socket server.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from ledger.accounts import DEFAULT_APP, Role
from ledger.apps import TokenConfig
from ledger.ids import stored_id
from ledger.snapshot import Snapshot

log = logging.getLogger(__name__)


class AuthError(Exception):
    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str  # the stored id (ledger.ids): the token's `sub` within its app
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
    async def verify(self, token: str) -> Principal: ...


class HS256Verifier:
    """Tokens signed with one HS256 secret: the default app's (HUB_JWT_SECRET), or an app's
    own. Subclassed for keys published as a JWKS (JwksVerifier)."""

    algorithms: tuple[str, ...] = ("HS256",)

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
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime
        self._app_id = app_id
        self.issuer = issuer
        # Tokens already verified, until their `exp`: a client sends the same token with every
        # request and every reconnect. Only what passed is kept, and nothing of it can turn
        # bad before `exp` (the lifetime check only grows easier with time).
        self._verified: dict[str, Principal] = {}

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token this verifier passed and that has not expired."""
        known = self._verified.get(token)
        if known is not None and time.time() < known.expires_at:
            return known
        return None

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known.expires_at:
                return known
            del self._verified[token]
        principal = self._verify(token, await self._key(token))
        if len(self._verified) >= VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = principal
        return principal

    async def _key(self, token: str) -> Any:
        return self._secret

    def _verify(self, token: str, key: Any) -> Principal:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
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
            user_id=stored_id(self._app_id, sub),
            role=role,
            name=name or None,
            email=email or None,
            app_id=self._app_id,
            expires_at=expires_at,
        )


JWKS_FRESH = 600.0  # seconds a fetched key set is used before it is fetched again
JWKS_REFETCH_AFTER = 5.0  # an unknown `kid` fetches again at most this often (key rotation)


class JwksVerifier(HS256Verifier):
    """An app's tokens signed with RS256 or ES256 by keys it publishes as a JWKS (Auth0,
    Keycloak, Cognito…): the key is the one whose `kid` the token names. The set is fetched
    when first needed, again after JWKS_FRESH, and at once (but at most every
    JWKS_REFETCH_AFTER) when a token names a key it does not hold: a rotation."""

    algorithms = ("RS256", "ES256")

    def __init__(self, jwks_url: str, client: Any, **options: Any) -> None:
        super().__init__("", **options)
        self._url = jwks_url
        self._client = client  # an httpx.AsyncClient
        self._keys: dict[str, Any] = {}
        self._fetched_at = -JWKS_FRESH  # the last fetch that worked
        self._attempted_at = -JWKS_FRESH  # the last fetch tried
        self._lock = asyncio.Lock()

    async def _key(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("invalid_token", f"the token is not valid: {exc}") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("invalid_token", "the token names no key (kid)")
        now = time.monotonic()
        stale = now - self._fetched_at > JWKS_FRESH
        unknown = kid not in self._keys
        if (stale or unknown) and now - self._attempted_at > JWKS_REFETCH_AFTER:
            async with self._lock:
                if self._attempted_at < now:  # nobody tried while this one waited
                    self._attempted_at = time.monotonic()
                    try:
                        await self._fetch()
                    except AuthError:
                        if kid not in self._keys:
                            raise
        key = self._keys.get(kid)
        if key is None:
            raise AuthError("invalid_token", f"the token's key {kid[:64]} is not published")
        return key

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except Exception as exc:  # the old keys stay: a blip at the issuer refuses nothing
            raise AuthError(
                "invalid_token", f"the issuer's keys cannot be read now: {type(exc).__name__}"
            ) from None
        self._keys = {key.key_id: key.key for key in keys if key.key_id}
        self._fetched_at = time.monotonic()


class Verifiers:
    """Which verifier a token goes to: the app's whose issuer is the token's `iss` (apps'
    token settings, read again every REFRESH seconds, and at once for an `iss` no app had),
    else the default app's. A token the default verifier already passed is not read again."""

    REFRESH = 30.0
    UNKNOWN_ISSUER_REFRESH = 1.0  # an `iss` no app has: read again, at most this often

    def __init__(
        self,
        default: HS256Verifier,
        load: Callable[[], Awaitable[list[TokenConfig]]],
        client: Any,
        max_lifetime: int = DEFAULT_MAX_LIFETIME,
    ) -> None:
        self.default = default
        self._load = load
        self._client = client
        self._max_lifetime = max_lifetime
        self._configs: dict[str, TokenConfig] = {}  # by issuer
        self._verifiers: dict[str, HS256Verifier] = {}
        self._snapshot = Snapshot(self._read, "the apps' token settings")

    async def verify(self, token: str) -> Principal:
        snapshot = self._snapshot
        if snapshot.older_than(self.REFRESH):
            await snapshot.refresh(self.REFRESH)
        known = self.default.remembered(token)  # the common case: read nothing of it again
        if known is not None:
            return known
        issuer = self._issuer_of(token)
        if (
            issuer is not None
            and issuer not in self._verifiers
            and issuer != self.default.issuer
            and snapshot.older_than(self.UNKNOWN_ISSUER_REFRESH)
        ):
            await snapshot.refresh(self.UNKNOWN_ISSUER_REFRESH)  # an app configured a moment ago
        verifier = self._verifiers.get(issuer) if issuer is not None else None
        return await (verifier or self.default).verify(token)

    @staticmethod
    def _issuer_of(token: str) -> str | None:
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return None  # the default verifier says what is wrong with it
        return issuer if isinstance(issuer, str) else None

    async def _read(self) -> None:
        configs = {config.issuer: config for config in await self._load()}
        verifiers = {}
        for issuer, config in list(configs.items()):
            if issuer == self.default.issuer:  # the settings' own: it stays the default's
                log.warning("app %s's token issuer is HUB_JWT_ISSUER: ignored", config.app_id)
                del configs[issuer]
                continue
            kept = self._verifiers.get(issuer)
            verifiers[issuer] = (
                kept
                if kept is not None and self._configs.get(issuer) == config
                else self._verifier(config)
            )
        self._configs, self._verifiers = configs, verifiers

    def _verifier(self, config: TokenConfig) -> HS256Verifier:
        options: dict[str, Any] = {
            "issuer": config.issuer,
            "audience": config.audience,
            "max_lifetime": self._max_lifetime,
            "app_id": config.app_id,
        }
        if config.secret is not None:
            return HS256Verifier(config.secret, **options)
        assert config.jwks_url is not None
        return JwksVerifier(config.jwks_url, self._client, **options)


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
    return jwt.encode(claims, secret, algorithm="HS256")


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
