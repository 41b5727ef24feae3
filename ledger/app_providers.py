"""An app's own provider accounts: the Paystack or Stripe keys its users' payments, its creators'
payouts and its refunds go through, instead of the deployment's (migration 0026).

The secrets are stored encrypted with the deployment's HUB_SECRETS_KEY (Fernet: AES-128-CBC
with an HMAC-SHA256, `cryptography`), so a copy of the database alone moves no money; the key
lives with the nodes' and workers' settings, not in the database.

An app's account is known inside Hub by its stored name, ``<app>\\x1f<provider>`` (ledger.ids):
a payment, payout or inbox row made through it carries that name, so a webhook that arrives at
the app's own URL (and is verified with the app's secret) can only ever match what was made
through the app's account, and the deployment's webhooks never match it. Outside Hub the name
shows as the provider's (``paystack``), like every stored id.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import DEFAULT_APP
from ledger.apps import get_app
from ledger.errors import LedgerError
from ledger.ids import stored_id
from ledger.schema import app_providers

log = logging.getLogger(__name__)

# What each provider needs, in the order `hub apps providers set` reads them.
SECRETS: dict[str, tuple[str, ...]] = {
    "paystack": ("secret_key",),
    "stripe": ("secret_key", "webhook_secret"),
}


@dataclass(frozen=True, slots=True)
class AppProvider:
    app_id: str
    provider: str  # paystack | stripe
    base_url: str | None  # None: the provider's own API
    updated_at: datetime
    secrets: dict[str, str] = field(repr=False, default_factory=dict)  # decrypted

    @property
    def name(self) -> str:
        """The account's stored name: what its payments, payouts and inbox rows carry."""
        return stored_id(self.app_id, self.provider)

    def as_json(self) -> dict[str, object]:
        """Without the secrets."""
        return {
            "app_id": self.app_id,
            "provider": self.provider,
            "base_url": self.base_url,
            "updated_at": self.updated_at.isoformat(),
        }


def secrets_cipher(key: str) -> Fernet:
    """HUB_SECRETS_KEY as a cipher; ValueError if it is not a Fernet key (32 url-safe base64
    bytes, as `hub secrets-key` prints one)."""
    try:
        return Fernet(key.encode())
    except ValueError:
        raise ValueError("HUB_SECRETS_KEY must be a Fernet key: 32 url-safe base64 bytes") from None


async def set_app_provider(
    session: AsyncSession,
    cipher: Fernet,
    app_id: str,
    provider: str,
    secrets: dict[str, str],
    base_url: str | None = None,
) -> AppProvider:
    """Give the app its own account at `provider` (replacing the one it had)."""
    if app_id == DEFAULT_APP:
        raise LedgerError(
            "the default app's providers are the deployment's (HUB_PAYSTACK_SECRET_KEY, ...)",
            param="app_id",
        )
    await get_app(session, app_id)  # UnknownApp
    needed = SECRETS.get(provider)
    if needed is None:
        raise LedgerError(
            f"an app may have its own {' or '.join(SECRETS)} account", param="provider"
        )
    if sorted(secrets) != sorted(needed) or not all(secrets.values()):
        raise LedgerError(f"{provider} needs {', '.join(needed)}", param="secrets")
    sealed = cipher.encrypt(json.dumps(secrets).encode()).decode()
    row = (
        await session.execute(
            insert(app_providers)
            .values(
                app_id=app_id,
                provider=provider,
                secrets=sealed,
                base_url=base_url,
                created_at=text("now()"),
                updated_at=text("now()"),
            )
            .on_conflict_do_update(
                index_elements=[app_providers.c.app_id, app_providers.c.provider],
                set_={"secrets": sealed, "base_url": base_url, "updated_at": text("now()")},
            )
            .returning(app_providers.c.updated_at)
        )
    ).one()
    return AppProvider(app_id, provider, base_url, row.updated_at, dict(secrets))


async def remove_app_provider(session: AsyncSession, app_id: str, provider: str) -> bool:
    """The app goes back to the deployment's account at `provider`; False if it had none.
    What was made through its own account stays its own: those payments' refunds and late
    webhooks then find no account (logged, and retried) until it is set again."""
    result = await session.execute(
        app_providers.delete().where(
            app_providers.c.app_id == app_id, app_providers.c.provider == provider
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_app_providers(session: AsyncSession, app_id: str) -> list[AppProvider]:
    """The app's own accounts, without their secrets."""
    rows = await session.execute(
        select(app_providers.c.provider, app_providers.c.base_url, app_providers.c.updated_at)
        .where(app_providers.c.app_id == app_id)
        .order_by(app_providers.c.provider)
    )
    return [AppProvider(app_id, r.provider, r.base_url, r.updated_at) for r in rows]


async def all_app_providers(session: AsyncSession, cipher: Fernet | None) -> list[AppProvider]:
    """Every app's own accounts, with their secrets. One sealed with another key (or any, when
    this process has no HUB_SECRETS_KEY) is left out and logged: its payments then find no
    account, and the operator sees why."""
    rows = await session.execute(select(app_providers).order_by("app_id", "provider"))
    found = []
    for row in rows:
        try:
            if cipher is None:
                raise InvalidToken
            secrets = json.loads(cipher.decrypt(row.secrets.encode()))
        except InvalidToken:
            log.error(
                "the %s account of app %s cannot be read: is HUB_SECRETS_KEY the key it was "
                "set with?",
                row.provider,
                row.app_id,
            )
            continue
        found.append(AppProvider(row.app_id, row.provider, row.base_url, row.updated_at, secrets))
    return found
