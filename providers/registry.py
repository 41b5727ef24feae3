"""The providers this deployment talks to, built from plain setting values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from providers.base import Provider
from providers.paystack import Paystack
from providers.standard import StandardWebhooks
from providers.stripe import Stripe

SANDBOX = "sandbox"  # the Standard Webhooks sender whose API is the sandbox's (sandbox_url)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    paystack_secret_key: str | None = None
    paystack_base_url: str = "https://api.paystack.co"
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_base_url: str = "https://api.stripe.com"
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
