"""Ledger foundation: users, accounts, transfers, entries, tips, events, idempotency, receipts.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from ledger.migrations.helpers import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE users (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    role        text NOT NULL CHECK (role IN ('fan', 'creator', 'admin')),
    event_seq   bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id        text REFERENCES users (id),
    kind            text NOT NULL,
    currency        char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance         bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL DEFAULT 0,
    may_go_negative boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_owner_kind_currency UNIQUE NULLS NOT DISTINCT (owner_id, kind, currency),
    CONSTRAINT accounts_not_negative CHECK (may_go_negative OR balance >= 0)
);

CREATE TABLE transfers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    currency     char(3) NOT NULL,
    reference    text UNIQUE,
    reverses_id  bigint REFERENCES transfers (id),
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE entries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id    bigint NOT NULL REFERENCES transfers (id),
    account_id     bigint NOT NULL REFERENCES accounts (id),
    amount         bigint NOT NULL CHECK (amount <> 0),
    currency       char(3) NOT NULL,
    balance_after  bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_transfer ON entries (transfer_id);
CREATE INDEX entries_account_history ON entries (account_id, id);

-- Transfers and entries are immutable: corrections are new, linked reversal transfers.
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable (append-only ledger)', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable();

CREATE TABLE tips (
    transfer_id  bigint PRIMARY KEY REFERENCES transfers (id),
    fan_id       text NOT NULL REFERENCES users (id),
    creator_id   text NOT NULL REFERENCES users (id),
    amount       bigint NOT NULL CHECK (amount > 0),
    fee          bigint NOT NULL CHECK (fee >= 0 AND fee <= amount),
    currency     char(3) NOT NULL,
    message      text CHECK (length(message) <= 280),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tips_creator ON tips (creator_id, transfer_id);
CREATE INDEX tips_fan ON tips (fan_id, transfer_id);

-- The event log (outbox): one row per recipient, numbered per user under the user row's lock,
-- so a user's seq order is their commit order.
CREATE TABLE events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id),
    seq           bigint NOT NULL,
    type          text NOT NULL,
    data          jsonb NOT NULL,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    CONSTRAINT events_user_seq UNIQUE (user_id, seq)
);
CREATE INDEX events_unpublished ON events (id) WHERE published_at IS NULL;

CREATE TABLE idempotency_keys (
    caller_id     text NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  text NOT NULL,
    status_code   integer,
    response      text,  -- the JSON body exactly as first sent, so replays are byte-identical
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (caller_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE SEQUENCE receipt_numbers;
CREATE TABLE receipts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id  bigint NOT NULL UNIQUE REFERENCES transfers (id),
    number       text NOT NULL UNIQUE,
    payer_id     text NOT NULL REFERENCES users (id),
    payee_id     text NOT NULL REFERENCES users (id),
    amount       bigint NOT NULL,
    fee          bigint NOT NULL,
    currency     char(3) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE receipts;
DROP SEQUENCE receipt_numbers;
DROP TABLE idempotency_keys;
DROP TABLE events;
DROP TABLE tips;
DROP TABLE entries;
DROP TABLE transfers;
DROP FUNCTION ledger_immutable() CASCADE;
DROP TABLE accounts;
DROP TABLE users;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
