"""Resolving settings into a runnable configuration: the embedded services fill what is unset."""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx
from cryptography.fernet import Fernet
from pydantic import SecretStr

from hub.embedded import Embedded
from hub.settings import Settings, SettingsError
from hub.vapid import load_private_key
from jobs.mail import SmtpConfig
from jobs.maintenance import Retention
from jobs.push import PushConfig
from ledger.app_providers import secrets_cipher
from providers.registry import ProviderConfig, Providers, build_providers


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database_url: str
    redis_url: str
    jwt_secret: str
    embedded: Embedded | None


def embedded_for(settings: Settings) -> Embedded:
    return Embedded(settings.home.resolve())


def _dev_secret(settings: Settings) -> str:
    path = settings.home / "jwt-secret"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def resolve_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if settings.database_url is None and settings.redis_url is None:
        return _dev_secret(settings)
    raise SettingsError(
        "missing setting HUB_JWT_SECRET: required when HUB_DATABASE_URL or HUB_REDIS_URL is set"
    )


def resolve_secrets_key(settings: Settings) -> str | None:
    """HUB_SECRETS_KEY, or on the fully embedded default a development key kept under `home`;
    None elsewhere (the apps' own provider accounts are then not used)."""
    if settings.secrets_key is not None:
        return settings.secrets_key.get_secret_value()
    if settings.database_url is not None or settings.redis_url is not None:
        return None
    path = settings.home / "secrets-key"
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(Fernet.generate_key().decode())
    return path.read_text().strip()


def resolve(settings: Settings) -> Runtime:
    """Fill unset URLs with the embedded services (started if not running) and, on the fully
    embedded default only, an unset JWT secret with a random development secret under `home`."""
    embedded = embedded_for(settings) if settings.embedded else None
    secret = resolve_secret(settings)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # platformdirs warns on import where XDG_RUNTIME_DIR is unset
        database_url = settings.database_url or embedded.database_url()  # type: ignore[union-attr]
        redis_url = settings.redis_url or embedded.redis_url()  # type: ignore[union-attr]
    return Runtime(settings, database_url, redis_url, secret, embedded)


def provider_config(settings: Settings) -> ProviderConfig:
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return ProviderConfig(
        paystack_secret_key=secret(settings.paystack_secret_key),
        paystack_base_url=settings.paystack_base_url.rstrip("/"),
        stripe_secret_key=secret(settings.stripe_secret_key),
        stripe_webhook_secret=secret(settings.stripe_webhook_secret),
        stripe_base_url=settings.stripe_base_url.rstrip("/"),
        standard_webhook_secrets={
            sender: value.get_secret_value()
            for sender, value in settings.standard_webhook_secrets.items()
        },
        sandbox_url=settings.sandbox_url.rstrip("/") if settings.sandbox_url else None,
    )


KEEPALIVE_SECONDS = 4.0


def build_provider_clients(settings: Settings) -> tuple[Providers, httpx.AsyncClient]:
    """The deployment's providers, and the apps' own once given a database
    (Providers.read_apps_from), with the HTTP client they share (the caller closes it)."""
    # An idle connection is dropped after 4 s, before a server's own keep-alive timeout (5 s
    # is uvicorn's, and common): reusing one the server is closing at that moment fails the
    # request with a read error, and a provider call is not retried (it may not be idempotent).
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
    )
    try:
        deployment = build_providers(provider_config(settings), http)
    except ValueError as exc:
        raise SettingsError(f"invalid setting HUB_STANDARD_WEBHOOK_SECRETS: {exc}") from None
    key = resolve_secrets_key(settings)
    return Providers(deployment, http, secrets_cipher(key) if key else None), http


def smtp_config(settings: Settings) -> SmtpConfig | None:
    if settings.smtp_url is None:
        return None
    url = urlsplit(settings.smtp_url.get_secret_value())
    secure = url.scheme == "smtps"
    return SmtpConfig(
        host=url.hostname or "localhost",
        port=url.port or (465 if secure else 25),
        sender=settings.mail_from,
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=secure,
    )


def retention(settings: Settings) -> Retention:
    return Retention(
        idempotency_key_hours=settings.idempotency_key_retention_hours,
        event_hours=settings.event_retention_hours,
        event_count=settings.event_retention_count,
    )


def push_config(settings: Settings) -> PushConfig | None:
    """Web Push for the workers; None (push off) without HUB_VAPID_PRIVATE_KEY."""
    if settings.vapid_private_key is None:
        return None
    return PushConfig(
        private_key=load_private_key(settings.vapid_private_key.get_secret_value()),
        subject=settings.vapid_subject,
        endpoint_hosts=settings.push_endpoint_hosts,
    )
