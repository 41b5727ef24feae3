"""Apps (the platforms a deployment serves) and their API keys.

A key reads `hk_<12 hex>_<secret>`: the first 15 characters are its prefix, shown in listings
and logs and used to find the row; the whole key is kept only as its SHA-256. A rotation makes
a new key with the same scopes and lets the old one work for an overlap; a revocation ends a
key at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import (
    ApiKeyNotRotatable,
    DuplicateApp,
    LedgerError,
    UnknownApiKey,
    UnknownApp,
)
from ledger.schema import api_keys, apps

APP_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
KEY_PREFIX_LENGTH = 15  # "hk_" and 12 hex digits
_KEY = re.compile(r"hk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")
MAX_ROTATION_OVERLAP = 30 * 24 * 3600  # seconds an old key may outlive its rotation


class Scope(StrEnum):
    PUBLISH = "publish"  # notifications into users' logs and creators' channels
    READ = "read"  # users' event logs, presence
    PAYMENTS = "payments"  # money on a user's behalf (reserved: no route needs it yet)
    ADMIN = "admin"  # users (create, update, disconnect) and the app's keys


@dataclass(frozen=True, slots=True)
class App:
    id: str
    name: str
    created_at: datetime

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    app_id: str
    prefix: str
    scopes: tuple[Scope, ...]
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_to: int | None

    def live_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def as_json(self) -> dict[str, object]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {
            "id": self.id,
            "app_id": self.app_id,
            "prefix": self.prefix,
            "scopes": [scope.value for scope in self.scopes],
            "label": self.label,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
            "rotated_to": self.rotated_to,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str | None:
    """The prefix of something shaped like a key, else None."""
    return key[:KEY_PREFIX_LENGTH] if _KEY.fullmatch(key) else None


def _new_key() -> tuple[str, str]:
    prefix = f"hk_{secrets.token_hex(6)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _key(row: object) -> ApiKey:
    m = row._mapping  # type: ignore[attr-defined]
    return ApiKey(
        id=m["id"],
        app_id=m["app_id"],
        prefix=m["prefix"],
        scopes=tuple(Scope(scope) for scope in m["scopes"]),
        label=m["label"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
        rotated_to=m["rotated_to"],
    )


_KEY_COLUMNS = [column for column in api_keys.c if column.name != "secret_hash"]


async def create_app(session: AsyncSession, app_id: str, name: str) -> App:
    if not APP_ID.fullmatch(app_id):
        raise LedgerError(
            "an app id is 1-40 lowercase letters, digits and dashes, not starting with a dash",
            param="id",
        )
    if not 0 < len(name) <= 80:
        raise LedgerError("an app's name is 1-80 characters", param="name")
    row = (
        await session.execute(
            insert(apps)
            .values(id=app_id, name=name)
            .on_conflict_do_nothing()
            .returning(apps.c.id, apps.c.name, apps.c.created_at)
        )
    ).one_or_none()
    if row is None:
        raise DuplicateApp(f"there is already an app {app_id}", param="id")
    return App(row.id, row.name, row.created_at)


async def list_apps(session: AsyncSession) -> list[App]:
    rows = await session.execute(select(apps).order_by(apps.c.created_at, apps.c.id))
    return [App(row.id, row.name, row.created_at) for row in rows]


async def get_app(session: AsyncSession, app_id: str) -> App:
    row = (await session.execute(select(apps).where(apps.c.id == app_id))).one_or_none()
    if row is None:
        raise UnknownApp(f"no app {app_id}", param="app_id")
    return App(row.id, row.name, row.created_at)


async def create_key(
    session: AsyncSession,
    app_id: str,
    scopes: tuple[Scope, ...],
    label: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key of the app, and its secret (shown once: only its hash is kept)."""
    await get_app(session, app_id)
    prefix, secret = _new_key()
    row = (
        await session.execute(
            insert(api_keys)
            .values(
                app_id=app_id,
                prefix=prefix,  # 48 random bits: a clash fails the insert (unique)
                secret_hash=hash_key(secret),
                scopes=sorted(set(scopes)),
                label=label,
            )
            .returning(*_KEY_COLUMNS)
        )
    ).one()
    return _key(row), secret


async def list_keys(session: AsyncSession, app_id: str) -> list[ApiKey]:
    await get_app(session, app_id)
    rows = await session.execute(
        select(*_KEY_COLUMNS).where(api_keys.c.app_id == app_id).order_by(api_keys.c.id)
    )
    return [_key(row) for row in rows]


async def _locked_key(session: AsyncSession, app_id: str, key_id: int) -> ApiKey:
    row = (
        await session.execute(
            select(*_KEY_COLUMNS, func.now().label("now"))
            .where(api_keys.c.id == key_id, api_keys.c.app_id == app_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise UnknownApiKey(f"no key {key_id} in app {app_id}", param="key_id")
    key = _key(row)
    if not key.live_at(row.now):
        raise ApiKeyNotRotatable(f"key {key_id} is revoked or expired", param="key_id")
    return key


async def rotate_key(
    session: AsyncSession, app_id: str, key_id: int, overlap_seconds: int
) -> tuple[ApiKey, str]:
    """A new key with the old one's scopes and label; the old one works `overlap_seconds` more
    (0: it ends now). A key is rotated once: rotate the new one next time."""
    if not 0 <= overlap_seconds <= MAX_ROTATION_OVERLAP:
        raise ApiKeyNotRotatable(
            f"the overlap is 0 to {MAX_ROTATION_OVERLAP} seconds", param="overlap_seconds"
        )
    old = await _locked_key(session, app_id, key_id)
    if old.rotated_to is not None:
        raise ApiKeyNotRotatable(
            f"key {key_id} was already rotated to key {old.rotated_to}", param="key_id"
        )
    new, secret = await create_key(session, app_id, old.scopes, old.label)
    await session.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(
            rotated_to=new.id,
            expires_at=func.least(
                api_keys.c.expires_at,
                func.now() + func.make_interval(0, 0, 0, 0, 0, 0, overlap_seconds),
            ),
        )
    )
    return new, secret


async def revoke_key(session: AsyncSession, app_id: str, key_id: int) -> ApiKey:
    row = (
        await session.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.app_id == app_id)
            .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
            .returning(*_KEY_COLUMNS)
        )
    ).one_or_none()
    if row is None:
        raise UnknownApiKey(f"no key {key_id} in app {app_id}", param="key_id")
    return _key(row)


_FIND = text(
    """
    SELECT id, app_id, prefix, secret_hash, scopes, label, created_at, expires_at, revoked_at,
           last_used_at, rotated_to
    FROM api_keys WHERE prefix = :prefix
    """
)


async def find_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The key whose secret is `key`, live or not; None for anything else."""
    prefix = key_prefix(key)
    if prefix is None:
        return None
    row = (await session.execute(_FIND, {"prefix": prefix})).one_or_none()
    if row is None or not secrets.compare_digest(row.secret_hash, hash_key(key)):
        return None
    return _key(row)


async def mark_used(session: AsyncSession, key_id: int) -> None:
    await session.execute(
        update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=func.now())
    )


# ---- the apps' own user tokens ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """How an app's user tokens are verified: the `iss` that names the app, and its HS256
    secret or its JWKS URL."""

    app_id: str
    issuer: str
    audience: str | None
    secret: str | None
    jwks_url: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "app_id": self.app_id,
            "issuer": self.issuer,
            "audience": self.audience,
            "algorithm": "HS256" if self.secret else "RS256/ES256 (JWKS)",
            "jwks_url": self.jwks_url,
        }


async def set_tokens(
    session: AsyncSession,
    app_id: str,
    issuer: str,
    *,
    secret: str | None = None,
    jwks_url: str | None = None,
    audience: str | None = None,
) -> TokenConfig:
    """Verify the app's user tokens with `secret` (HS256) or the keys at `jwks_url`; a token
    names the app by its `iss`, `issuer`."""
    if app_id == "default":
        raise LedgerError(
            "the default app's tokens are the settings' (HUB_JWT_SECRET, HUB_JWT_ISSUER)",
            param="app_id",
        )
    if (secret is None) == (jwks_url is None):
        raise LedgerError("give a secret (HS256) or a JWKS URL, one of them", param="secret")
    if secret is not None and len(secret) < 32:
        raise LedgerError("an HS256 secret is at least 32 characters", param="secret")
    if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
        raise LedgerError("the JWKS URL is an http(s) URL", param="jwks_url")
    await get_app(session, app_id)
    taken = await session.scalar(
        select(apps.c.id).where(apps.c.jwt_issuer == issuer, apps.c.id != app_id)
    )
    if taken is not None:
        raise LedgerError(f"the issuer {issuer} names another app", param="issuer")
    await session.execute(
        update(apps)
        .where(apps.c.id == app_id)
        .values(jwt_issuer=issuer, jwt_audience=audience, jwt_secret=secret, jwks_url=jwks_url)
    )
    return TokenConfig(app_id, issuer, audience, secret, jwks_url)


async def token_configs(session: AsyncSession) -> list[TokenConfig]:
    rows = await session.execute(
        select(
            apps.c.id, apps.c.jwt_issuer, apps.c.jwt_audience, apps.c.jwt_secret, apps.c.jwks_url
        )
        .where(apps.c.jwt_issuer.is_not(None))
        .order_by(apps.c.id)
    )
    return [TokenConfig(*row) for row in rows]


# ---- what an app sets for itself -------------------------------------------------------------

_CURRENCY = re.compile(r"[A-Z]{3}")
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


@dataclass(frozen=True, slots=True)
class AppSettings:
    """What an app sets for itself; None (no origins) leaves the deployment's setting:
    `fee_bps` the platform fee on its users' tips and sales, `currencies` the ones its users
    may pay in (among the deployment's), `rate_limit_server` its server API's limit (all its
    keys together, "50/second"), `allowed_origins` the browser origins its pages may open
    sockets from, besides the deployment's."""

    app_id: str
    fee_bps: int | None = None
    currencies: tuple[str, ...] | None = None
    rate_limit_server: str | None = None
    allowed_origins: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "fee_bps": self.fee_bps,
            "currencies": list(self.currencies) if self.currencies is not None else None,
            "rate_limit_server": self.rate_limit_server,
            "allowed_origins": list(self.allowed_origins),
        }


class _Unset:
    """An argument not given (None means: back to the deployment's)."""


_UNSET = _Unset()
_SETTINGS = (
    apps.c.id,
    apps.c.fee_bps,
    apps.c.currencies,
    apps.c.rate_limit_server,
    apps.c.allowed_origins,
)


async def all_app_settings(session: AsyncSession) -> list[AppSettings]:
    rows = await session.execute(select(*_SETTINGS).order_by(apps.c.id))
    return [_settings(row) for row in rows]


def _settings(row: object) -> AppSettings:
    return AppSettings(
        row.id,  # type: ignore[attr-defined]
        row.fee_bps,  # type: ignore[attr-defined]
        tuple(row.currencies) if row.currencies is not None else None,  # type: ignore[attr-defined]
        row.rate_limit_server,  # type: ignore[attr-defined]
        tuple(row.allowed_origins),  # type: ignore[attr-defined]
    )


async def set_app_settings(
    session: AsyncSession,
    app_id: str,
    *,
    fee_bps: int | _Unset | None = _UNSET,
    currencies: Sequence[str] | _Unset | None = _UNSET,
    rate_limit_server: str | _Unset | None = _UNSET,
    allowed_origins: Sequence[str] | _Unset = _UNSET,
) -> AppSettings:
    """Change what is given (None: back to the deployment's; origins: () for none). The
    caller checks what only the deployment knows (its currencies, the rate-limit syntax)."""
    if app_id == "default":
        raise LedgerError(
            "the default app's settings are the deployment's (HUB_PLATFORM_FEE_BPS and "
            "PUT /api/v1/admin/platform-fee, HUB_CURRENCIES, HUB_RATE_LIMIT_SERVER, "
            "HUB_CORS_ORIGINS)",
            param="app_id",
        )
    values: dict[str, object] = {}
    if not isinstance(fee_bps, _Unset):
        if fee_bps is not None and not (isinstance(fee_bps, int) and 0 <= fee_bps <= 5_000):
            raise LedgerError("a fee is 0 to 5000 basis points", param="fee_bps")
        values["fee_bps"] = fee_bps
    if not isinstance(currencies, _Unset):
        if currencies is not None:
            listed = tuple(currencies)
            if not 1 <= len(listed) <= 20 or not all(
                isinstance(c, str) and _CURRENCY.fullmatch(c) for c in listed
            ):
                raise LedgerError(
                    "currencies are 1 to 20 ISO 4217 codes such as NGN", param="currencies"
                )
            currencies = list(dict.fromkeys(listed))
        values["currencies"] = currencies
    if not isinstance(rate_limit_server, _Unset):
        if rate_limit_server is not None and not (
            isinstance(rate_limit_server, str) and 0 < len(rate_limit_server) <= 100
        ):
            raise LedgerError("a rate limit such as 50/second", param="rate_limit_server")
        values["rate_limit_server"] = rate_limit_server
    if not isinstance(allowed_origins, _Unset):
        origins = list(dict.fromkeys(allowed_origins))
        for origin in origins:
            if not (isinstance(origin, str) and _ORIGIN.fullmatch(origin)):
                raise LedgerError(
                    f"{str(origin)[:100]!r} is not an origin such as https://app.example.com",
                    param="allowed_origins",
                )
        if len(origins) > 20:
            raise LedgerError("at most 20 origins", param="allowed_origins")
        values["allowed_origins"] = origins
    if values:
        await session.execute(update(apps).where(apps.c.id == app_id).values(**values))
    row = (await session.execute(select(*_SETTINGS).where(apps.c.id == app_id))).one_or_none()
    if row is None:
        raise UnknownApp(f"no app {app_id}", param="app_id")
    return _settings(row)
