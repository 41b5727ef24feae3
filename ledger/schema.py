"""Table definitions (SQLAlchemy Core) matching the Alembic migrations in ledger/migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("owner_id", Text, ForeignKey("users.id")),
    Column("kind", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("may_go_negative", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", Text, unique=True),
    Column("reverses_id", BigInteger, ForeignKey("transfers.id")),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

entries = Table(
    "entries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), nullable=False),
    Column("account_id", BigInteger, ForeignKey("accounts.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

tips = Table(
    "tips",
    metadata,
    Column("transfer_id", BigInteger, ForeignKey("transfers.id"), primary_key=True),
    Column("fan_id", Text, ForeignKey("users.id"), nullable=False),
    Column("creator_id", Text, ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("message", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
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
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
