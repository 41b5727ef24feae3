"""The providers this deployment talks to, built from plain setting values."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.app_providers import AppProvider, all_app_providers
from ledger.ids import SEPARATOR, stored_id
from ledger.snapshot import Snapshot
from providers.base import Provider
from providers.paystack import Paystack
from providers.standard import StandardWebhooks
from providers.stripe import Stripe

PAYSTACK_API = "https://api.paystack.co"
STRIPE_API = "https://api.stripe.com"
SANDBOX = "sandbox"  # the Standard Webhooks sender whose API is the sandbox's (sandbox_url)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    paystack_secret_key: str | None = None
    paystack_base_url: str = PAYSTACK_API
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_base_url: str = STRIPE_API
    standard_webhook_secrets: Mapping[str, str] = field(default_factory=dict)  # sender → whsec_
    sandbox_url: str | None = None


def build_providers(config: ProviderConfig, http: httpx.AsyncClient) -> dict[str, Provider]:
    """Every provider whose secrets are set, by name. A Standard Webhooks sender may not take the
    name of a built-in provider: the webhook route and the inbox key on the name."""
    providers: dict[str, Provider] = {}
    if config.paystack_secret_key:
        providers["paystack"] = Paystack(config.paystack_secret_key, config.paystack_base_url, http)
    if config.stripe_secret_key and config.stripe_webhook_secret:
        providers["stripe"] = Stripe(
            config.stripe_secret_key, config.stripe_webhook_secret, config.stripe_base_url, http
        )
    for sender, secret in config.standard_webhook_secrets.items():
        if sender in ("paystack", "stripe"):
            raise ValueError(f"a Standard Webhooks sender may not be named {sender!r}")
        api = config.sandbox_url if sender == SANDBOX else None
        providers[sender] = StandardWebhooks(sender, secret, api, http)
    return providers


def app_provider(account: AppProvider, http: httpx.AsyncClient) -> Provider:
    """An app's own account (ledger.app_providers), named by its stored name."""
    if account.provider == "paystack":
        return Paystack(
            account.secrets["secret_key"], account.base_url or PAYSTACK_API, http, account.name
        )
    return Stripe(
        account.secrets["secret_key"],
        account.secrets["webhook_secret"],
        account.base_url or STRIPE_API,
        http,
        account.name,
    )


class Providers:
    """The provider accounts this process talks to, by the name a payment, payout or inbox row
    carries: the deployment's own by their names (its settings: `paystack`, `stripe`, each
    Standard Webhooks sender), and every app's own by their stored names (`<app>\\x1fpaystack`,
    ledger.app_providers), read from the database every REFRESH seconds when asked for, and at
    once (at most every UNKNOWN_REFRESH seconds) for a name not known yet. So a key an operator
    sets or rotates with `hub apps providers` is used by every node and worker within REFRESH
    seconds."""

    REFRESH = 5.0
    UNKNOWN_REFRESH = 1.0

    def __init__(
        self,
        deployment: Mapping[str, Provider],
        http: httpx.AsyncClient | None,  # None: one of its own, made for the first app account
        cipher: Fernet | None = None,  # HUB_SECRETS_KEY's: None, and no app's account is read
    ) -> None:
        self.deployment: dict[str, Provider] = dict(deployment)
        self._http = http
        self._cipher = cipher
        self._load: Callable[[], Awaitable[Sequence[AppProvider]]] | None = None
        self._own: dict[str, Provider] = {}
        self._versions: dict[str, datetime] = {}  # what each of _own was built from
        self._snapshot = Snapshot(self._read, "the apps' provider accounts")

    def read_apps_from(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Read the apps' own accounts from this database (a process that does not knows
        only the deployment's)."""

        async def load() -> list[AppProvider]:
            async with sessions() as session:
                return await all_app_providers(session, self._cipher)

        self._load = load

    async def get(self, name: str) -> Provider | None:
        """The account `name` (a deployment's provider, or an app's stored name); None if
        this deployment has no such account (or no longer)."""
        found = self.deployment.get(name)
        if found is not None or SEPARATOR not in name or self._load is None:
            return found
        stale_after = self.REFRESH if name in self._own else self.UNKNOWN_REFRESH
        if self._snapshot.older_than(stale_after):
            await self._snapshot.refresh(stale_after)
        return self._own.get(name)

    async def of_app(self, app_id: str, provider: str) -> str | None:
        """The name of the account the app's money goes through at `provider`: the app's own
        if it has one, else the deployment's; None if neither exists."""
        own = stored_id(app_id, provider)
        if own != provider and await self.get(own) is not None:
            return own
        return provider if provider in self.deployment else None

    def offered(self, app_id: str) -> list[str]:
        """The providers the app's users may name, as last read (for an error's message)."""
        prefix = stored_id(app_id, "")
        own = {name[len(prefix) :] for name in self._own if prefix and name.startswith(prefix)}
        return sorted(own | self.deployment.keys())

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        return self._http

    async def _read(self) -> None:
        assert self._load is not None
        accounts = await self._load()
        own: dict[str, Provider] = {}
        for account in accounts:
            kept = self._own.get(account.name)
            unchanged = self._versions.get(account.name) == account.updated_at
            if kept is None or not unchanged:
                kept = app_provider(account, self._client())
            own[account.name] = kept
        self._own = own
        self._versions = {account.name: account.updated_at for account in accounts}
