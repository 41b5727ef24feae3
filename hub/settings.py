"""The one place that reads the environment: every setting, validated, with a one-line error."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger.db import PoolSettings


class SettingsError(Exception):
    """A missing or invalid setting; its message is one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Unset → the embedded PostgreSQL / Redis under `home` are used (and started if needed).
    database_url: str | None = None
    redis_url: str | None = None
    # A read replica for read-only routes (wallet, statements, analytics); they may lag it.
    database_read_url: str | None = None
    # Unset on the embedded default → a random development secret kept under `home`.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str | None = None
    # Encrypts the apps' own provider keys (`hub apps providers`); a Fernet key, such as
    # `hub apps secrets-key` prints. Unset on the embedded default → one kept under `home`.
    secrets_key: SecretStr | None = None
    jwt_audience: str | None = None
    # Basis points of each tip kept by the platform (250 = 2.5 %).
    platform_fee_bps: int = Field(default=1000, ge=0, le=5_000)
    currencies: Annotated[tuple[str, ...], NoDecode] = ("NGN", "USD")
    # The connection pool of each process, and how long PostgreSQL may take.
    database_pool_size: int = Field(default=10, ge=1, le=500)
    database_pool_acquire_timeout: float = Field(default=5.0, gt=0)
    database_connect_timeout: float = Field(default=1.0, gt=0)
    database_statement_timeout_ms: int = Field(default=30_000, ge=100)
    database_slow_query_ms: int | None = Field(default=500, ge=1)
    # Group commit of wallet tips: at most this many in one transaction, and this many
    # transactions at once per process (each on its own connection of the asyncpg pool).
    group_commit_max_batch: int = Field(default=64, ge=1, le=1_000)
    group_commit_lanes: int = Field(default=2, ge=1, le=32)
    # Once started, freeze what start-up made out of the garbage collector's sight and make full
    # collections rarer (hub.serving.settle_garbage_collector).
    gc_freeze: bool = True
    # Email receipts: smtp://user:password@host:port (STARTTLS when offered) or smtps://…
    smtp_url: SecretStr | None = None
    mail_from: str = "Hub <receipts@hub.invalid>"
    # Payment providers. Base URLs are settings so that the sandbox can stand in for either.
    paystack_secret_key: SecretStr | None = None
    paystack_base_url: str = "https://api.paystack.co"
    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_base_url: str = "https://api.stripe.com"
    # Standard Webhooks senders: "sender=whsec_...,other=whsec_..." (or a JSON object).
    standard_webhook_secrets: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict
    )
    # The sandbox provider's API (hub dev starts one); unset → provider "sandbox" is off.
    sandbox_url: str | None = None
    # The provider that sends creators' payouts unless a payout names another.
    payout_provider: str = "paystack"
    # The balancers in front of the hub, as addresses or CIDRs: only a peer listed here has its
    # X-Forwarded-For and X-Forwarded-Proto believed, and the client is the rightmost hop that
    # is not listed (every hop to its left was written by the client). HUB_FORWARDED_ALLOW_IPS
    # is read too, its old name.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("127.0.0.1", "::1"),
        validation_alias=AliasChoices(
            "trusted_proxies", "hub_trusted_proxies", "hub_forwarded_allow_ips"
        ),
    )
    # Where browsers reach this hub, for providers' return links; default http://HOST:PORT.
    public_url: str | None = None
    # Rate limits in the `limits` library's notation ("10/minute", "5/second;100/hour").
    rate_limit_payments: str = "10/minute"
    rate_limit_transfers: str = "60/minute"
    rate_limit_webhooks: str = "100/minute"
    # The server API, per app (all its keys together).
    rate_limit_server: str = "100/second"
    # With Redis away: true lets requests through unlimited, false refuses them with 503.
    rate_limit_fail_open: bool = True
    home: Path = Path(".hub")
    # uvicorn worker processes per node; above 1, metrics go through a multiprocess directory.
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    # Browser origins allowed to open a socket, besides the hub's own (HUB_PUBLIC_URL, or the
    # page's own host): "https://app.example.com", "http://localhost:*" (any port), or "*".
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Socket.IO transports: WebSocket only needs no sticky sessions; "polling,websocket" also
    # serves clients that cannot open a WebSocket, and then the balancer must be sticky.
    socket_transports: Annotated[tuple[str, ...], NoDecode] = ("websocket",)
    # Who serves WebSocket clients: Hub's own endpoint ("hub", realtime/lean.py) or
    # python-socketio on uvicorn's WebSocket ("python-socketio"). Long-polling is always
    # python-socketio's.
    socket_engine: Literal["hub", "python-socketio"] = "hub"
    socket_max_connections_per_user: int = Field(default=10, ge=1, le=1000)
    # Live overlay sockets per overlay key (cluster-wide), and active keys per creator.
    socket_max_connections_per_overlay_key: int = Field(default=5, ge=1, le=1000)
    overlay_keys_per_creator: int = Field(default=20, ge=1, le=1000)
    # The longest token lifetime accepted (exp - iat, and exp - now). A socket is closed when
    # its token expires; the client reconnects with a fresh one and recovers what it missed.
    jwt_max_lifetime_seconds: int = Field(default=24 * 3600, ge=60)
    # Limits at the edge, answered before any work: request bodies (413), the request line and
    # headers (414/431), and the shape of JSON bodies (400).
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_webhook_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_url_bytes: int = Field(default=8 * 1024, ge=256)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    json_max_depth: int = Field(default=32, ge=2, le=512)
    json_max_number_length: int = Field(default=40, ge=20, le=4000)
    json_max_values: int = Field(default=10_000, ge=100, le=1_000_000)
    # Retention, applied by the workers' housekeeping jobs. Keys are kept at least a day: a
    # client retrying within one must get its saved response, not a second execution.
    idempotency_key_retention_hours: int = Field(default=48, ge=24)
    # Socket recovery's window: published events older than this that are also beyond each
    # user's last `event_retention_count` are deleted (recovery then answers recovered: false).
    event_retention_hours: int = Field(default=24, ge=1)
    event_retention_count: int = Field(default=1_000, ge=1)
    # Demo sign-in on the web pages (/app/): one click signs in as a demo user. `hub dev` sets
    # it; a production hub never does (anyone could take a demo user's token).
    dev_signin: bool = False
    # When set, /metrics answers only `Authorization: Bearer <this token>` (401 otherwise).
    metrics_token: SecretStr | None = None
    # Web Push of creators' tip alerts: the VAPID private key (base64url raw P-256, or PEM);
    # unset → push is off. The subject is the contact push services see in the signed token.
    vapid_private_key: SecretStr | None = None
    vapid_subject: str = "mailto:admin@localhost"
    # Outbound webhooks may go to private and loopback addresses, over http too (development
    # and tests only: `hub dev` sets it; in production an endpoint is an https URL whose every
    # address is public, checked again at each send).
    webhook_allow_private_targets: bool = False
    # The push services the hub will POST to (an SSRF guard: a subscription names any URL).
    # "*.example.com" matches subdomains. A loopback IP listed here is also allowed over http.
    push_endpoint_hosts: Annotated[tuple[str, ...], NoDecode] = (
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "web.push.apple.com",
        "*.notify.windows.com",
    )

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _asyncpg_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes for HS256")
        return value

    @field_validator("secrets_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(value.get_secret_value().encode())
            except ValueError:
                raise ValueError(
                    "must be a Fernet key, 32 url-safe base64 bytes "
                    "(`hub apps secrets-key` prints one)"
                ) from None
        return value

    @field_validator("currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("currencies")
    @classmethod
    def _iso_currencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one currency")
        for code in value:
            if len(code) != 3 or not code.isalpha() or not code.isupper():
                raise ValueError(f"{code!r} is not an ISO 4217 code such as NGN")
        return value

    @field_validator("standard_webhook_secrets", mode="before")
    @classmethod
    def _parse_senders(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return json.loads(text)
            pairs = [part.strip() for part in text.split(",") if part.strip()]
            parsed: dict[str, str] = {}
            for pair in pairs:
                sender, sep, secret = pair.partition("=")
                if not sep or not sender.strip() or not secret.strip():
                    raise ValueError("expected sender=whsec_... pairs separated by commas")
                parsed[sender.strip()] = secret.strip()
            return parsed
        return value

    @field_validator("standard_webhook_secrets")
    @classmethod
    def _whsec(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for sender, secret in value.items():
            if not sender.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"sender name {sender!r} must be letters, digits, - or _")
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError(f"the secret for {sender!r} must start with whsec_")
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("metrics_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if len(token) < 16 or not token.isprintable() or any(c.isspace() for c in token):
            raise ValueError("must be at least 16 printable characters without spaces")
        return value

    @field_validator("vapid_private_key", mode="before")
    @classmethod
    def _no_vapid_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("vapid_private_key")
    @classmethod
    def _vapid_key(cls, value: SecretStr | None) -> SecretStr | None:
        from hub.vapid import load_private_key

        if value is not None:
            load_private_key(value.get_secret_value())  # its ValueError names what is wrong
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _vapid_subject(cls, value: str) -> str:
        if not (value.startswith("mailto:") and "@" in value) and not value.startswith("https://"):
            raise ValueError("must be a mailto: address or an https: URL")
        return value

    @field_validator("push_endpoint_hosts", mode="before")
    @classmethod
    def _split_push_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("push_endpoint_hosts")
    @classmethod
    def _push_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            name = host.removeprefix("*.")
            if not name or any(c in name for c in "/:@*?# ") or host != host.lower():
                raise ValueError(f"{host!r} must be a host name (or *.domain), without a port")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("smtp://", "smtps://")):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @field_validator(
        "rate_limit_payments", "rate_limit_transfers", "rate_limit_webhooks", "rate_limit_server"
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit such as 10/minute") from None
        return value

    @field_validator("socket_transports", mode="before")
    @classmethod
    def _split_transports(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("socket_transports")
    @classmethod
    def _known_transports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not set(value) <= {"websocket", "polling"}:
            raise ValueError("must be websocket, polling, or both")
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin == "*":
                continue
            url = urlsplit(origin.removesuffix(":*"))
            if (
                url.scheme not in ("http", "https")
                or not url.hostname
                or url.path
                or url.query
                or url.fragment
                or url.username is not None
            ):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if entry == "*":
                raise ValueError(
                    "'*' would believe any X-Forwarded-For, so any client could choose its "
                    "address: name the balancers' addresses or networks (10.0.0.0/8)"
                )
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError("must be an http(s) URL such as https://hub.example.com")
        return value.rstrip("/")

    def pool(self) -> PoolSettings:
        return PoolSettings(
            size=self.database_pool_size,
            max_overflow=self.database_pool_size,
            acquire_timeout=self.database_pool_acquire_timeout,
            connect_timeout=self.database_connect_timeout,
            statement_timeout_ms=self.database_statement_timeout_ms,
            slow_query_ms=self.database_slow_query_ms,
        )

    @property
    def embedded(self) -> bool:
        """True when some service runs on the embedded default."""
        return self.database_url is None or self.redis_url is None


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, or raise SettingsError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "HUB_" + str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {name}: {message}") from None


def export_metrics_directory() -> str:
    """Several uvicorn workers share metrics through files: prometheus-client finds the folder
    in its environment variable, which must be set before it is imported (so here, with the
    other environment handling, not in the metrics module)."""
    import os
    import tempfile

    folder = tempfile.mkdtemp(prefix="hub-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder
