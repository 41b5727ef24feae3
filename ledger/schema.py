"""Table definitions (SQLAlchemy Core) matching the Alembic migrations in ledger/migrations.

The migrations make the database; this describes it for the statements built with SQLAlchemy,
and `tests/ledger/test_schema.py` holds the two to each other with Alembic's own comparison
(tables, columns, types, nullability, keys, indexes, unique constraints). CHECK constraints,
functions and triggers live in the migrations only (Alembic does not compare them)."""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

# The platforms a deployment serves (ledger/migrations/versions/0018_apps_keys.py).
apps = Table(
    "apps",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("jwt_issuer", Text, unique=True),
    Column("jwt_audience", Text),
    Column("jwt_secret", Text),
    Column("jwks_url", Text),
    Column("fee_bps", Integer),
    Column("currencies", ARRAY(Text)),
    Column("rate_limit_server", Text),
    Column("allowed_origins", ARRAY(Text), nullable=False),
)

# An app's own provider accounts (ledger/migrations/versions/0026_app_providers.py).
app_providers = Table(
    "app_providers",
    metadata,
    Column("app_id", Text, ForeignKey("apps.id"), primary_key=True),
    Column("provider", Text, primary_key=True),
    Column("secrets", Text, nullable=False),  # Fernet, with HUB_SECRETS_KEY
    Column("base_url", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("provider IN ('paystack', 'stripe')"),
    CheckConstraint("app_id <> 'default'"),
)

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("display_name", Text),
    Column("email", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("app_id", Text, ForeignKey("apps.id"), nullable=False),
    Column("live_since", DateTime(timezone=True)),
    Column("live_title", Text),
    Column("banned_until", DateTime(timezone=True)),
    Index("users_app", "app_id", "id"),
    # the stored id names the user's app (ledger.ids)
    CheckConstraint(
        "CASE WHEN app_id = 'default' THEN strpos(id, E'\\x1f') = 0 "
        "ELSE starts_with(id, app_id || E'\\x1f') END",
        name="users_id_of_app",
    ),
    Index("users_banned", "banned_until", postgresql_where=text("banned_until IS NOT NULL")),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("app_id", Text, ForeignKey("apps.id"), nullable=False),
    Column("prefix", Text, nullable=False, unique=True),
    Column("secret_hash", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("label", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("rotated_to", BigInteger, ForeignKey("api_keys.id")),
    Index("api_keys_app", "app_id", "id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("owner_id", Text, ForeignKey("users.id")),
    Column("kind", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("may_go_negative", Boolean, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("provider", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "owner_id",
        "kind",
        "currency",
        "provider",
        name="accounts_identity",
        postgresql_nulls_not_distinct=True,
    ),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("reference", Text, unique=True),
    Column("reverses_id", BigInteger, ForeignKey("transfers.id")),
    Column("fee_bps", Integer),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("transfers_reverses", "reverses_id", postgresql_where=text("reverses_id IS NOT NULL")),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("entries_account_history", "account_id", "id"),
    Index("entries_account_time", "account_id", "created_at", "id"),
    Index("entries_transfer", "transfer_id"),
)

tips = Table(
    "tips",
    metadata,
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), primary_key=True),
    Column("fan_id", Text, ForeignKey("users.id"), nullable=False),
    Column("creator_id", Text, ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("message", Text),
    Column("payment_id", BigInteger, ForeignKey("payments.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("tips_created", "created_at"),
    Index("tips_creator", "creator_id", "transfer_id"),
    Index("tips_fan", "fan_id", "transfer_id"),
)

creator_goals = Table(
    "creator_goals",
    metadata,
    Column("creator_id", Text, ForeignKey("users.id"), primary_key=True),
    Column("title", Text, nullable=False),
    Column("target", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("after_transfer_id", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", Text, ForeignKey("users.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    UniqueConstraint("user_id", "seq", name="events_user_seq"),
    Index("events_occurred", "occurred_at"),
    Index("events_unpublished", "id", postgresql_where=text("published_at IS NULL")),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Index("idempotency_keys_created", "created_at"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), nullable=False, unique=True),
    Column("number", Text, nullable=False, unique=True),
    Column("payer_id", Text, ForeignKey("users.id"), nullable=False),
    Column("payee_id", Text, ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("emailed_at", DateTime(timezone=True)),
)

# Follow-ups written in the money's own transaction (the trigger on events); the worker drains them.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("topic", Text, nullable=False),
    Column("ref", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

holds = Table(
    "holds",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("status", Text, nullable=False),
    Column("reference", Text, nullable=False, unique=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Index("holds_pending_expiry", "expires_at", postgresql_where=text("status = 'pending'")),
)

platform_fee_changes = Table(
    "platform_fee_changes",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("bps", Integer, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

content = Table(
    "content",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("creator_id", Text, ForeignKey("users.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("body", Text),
    Index("content_creator", "creator_id", "id"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("reference", Text, nullable=False, unique=True),
    Column("user_id", Text, ForeignKey("users.id"), nullable=False),
    Column("provider", Text, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("provider_ref", Text),
    Column("checkout_url", Text),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("failure_reason", Text),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id")),
    Column("verified_at", DateTime(timezone=True)),
    Column("verification", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("payments_created", "created_at"),
    Index("payments_pending", "created_at", postgresql_where=text("status = 'pending'")),
    Index(
        "payments_unconfirmed",
        "id",
        postgresql_where=text("verification LIKE 'NOT CONFIRMED%'"),
    ),
    Index("payments_user", "user_id", "id"),
)

entitlements = Table(
    "entitlements",
    metadata,
    Column("buyer_id", Text, ForeignKey("users.id"), primary_key=True),
    Column("content_id", BigInteger, ForeignKey("content.id"), primary_key=True),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), nullable=False),
    Column("payment_id", BigInteger, ForeignKey("payments.id")),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("entitlements_content", "content_id"),
    Index("entitlements_created", "created_at"),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text),
    Column("outcome", Text, nullable=False),
    Column("detail", Text),
    Column("payload", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("provider", "event_id", name="webhook_events_once"),
    Index("webhook_events_outcome", "outcome", "received_at"),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("reference", Text, nullable=False, unique=True),
    Column("creator_id", Text, ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("provider", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("hold_id", BigInteger, ForeignKey("holds.id"), nullable=False),
    Column("provider_ref", Text),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id")),
    Column("failure_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("payouts_creator", "creator_id", "id"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("reference", Text, nullable=False, unique=True),
    Column("payment_id", BigInteger, ForeignKey("payments.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("status", Text, nullable=False),
    Column("provider_ref", Text, unique=True),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("refunds_payment", "payment_id"),
)

overlay_keys = Table(
    "overlay_keys",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("creator_id", Text, ForeignKey("users.id"), nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("label", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Index("overlay_keys_creator", "creator_id", "id"),
)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", Text, ForeignKey("users.id"), nullable=False),
    Column("endpoint", Text, nullable=False, unique=True),
    Column("p256dh", Text, nullable=False),
    Column("auth", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("push_subscriptions_user", "user_id", "created_at"),
)

failed_jobs = Table(
    "failed_jobs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("job", Text, nullable=False),
    Column("job_id", Text),
    Column("args", JSONB, nullable=False),
    Column("error", Text, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    Column("retried_at", DateTime(timezone=True)),
    Column("retried_by", Text),
    Column("retry_job_id", Text),
)

reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("ok", Boolean),
    Column("report", JSONB, nullable=False),
)

Index("failed_jobs_recent", failed_jobs.c.failed_at.desc())

# Daily revenue per currency, and each creator's daily net: the analytics API reads these.
revenue_daily = Table(
    "revenue_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("currency", CHAR(3), primary_key=True),
    Column("gross", BigInteger, nullable=False),
    Column("fees", BigInteger, nullable=False),
    Column("tips", Integer, nullable=False),
    Column("sales", Integer, nullable=False),
)

creator_daily = Table(
    "creator_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("creator_id", Text, primary_key=True),
    Column("currency", CHAR(3), primary_key=True),
    Column("net", BigInteger, nullable=False),
)
Index(
    "creator_daily_ranking",
    creator_daily.c.currency,
    creator_daily.c.day,
    creator_daily.c.net.desc(),
)

# Outbound webhooks (ledger/migrations/versions/0019_outbound_webhooks.py).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("app_id", Text, ForeignKey("apps.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text),
    Column("event_types", ARRAY(Text), nullable=False),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
    Column("disabled_reason", Text),
    Column("failing_since", DateTime(timezone=True)),
    Index("webhook_endpoints_app", "app_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "endpoint_id",
        BigInteger,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", BigInteger, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("endpoint_id", "event_id", name="webhook_deliveries_once"),
    Index(
        "webhook_deliveries_pending",
        "endpoint_id",
        "user_id",
        "seq",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("webhook_deliveries_endpoint", "endpoint_id", "id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("error", Text),
    Index("webhook_attempts_delivery", "delivery_id", "id"),
)
