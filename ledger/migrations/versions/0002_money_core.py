"""Money core: holds, provider clearing, payments, webhook inbox, content, payouts, refunds, fee.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from ledger.migrations.helpers import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
-- available = balance - held; holds reserve money without moving it.
ALTER TABLE accounts ADD COLUMN held bigint NOT NULL DEFAULT 0 CHECK (held >= 0);
-- provider_clearing accounts are per provider as well as per currency.
ALTER TABLE accounts ADD COLUMN provider text;
ALTER TABLE accounts DROP CONSTRAINT accounts_owner_kind_currency;
ALTER TABLE accounts ADD CONSTRAINT accounts_identity
    UNIQUE NULLS NOT DISTINCT (owner_id, kind, currency, provider);
-- Earnings may go negative, but only through a refund or chargeback (checked in post_transfer);
-- every other account that may not go negative is guarded here too.
ALTER TABLE accounts DROP CONSTRAINT accounts_not_negative;
ALTER TABLE accounts ADD CONSTRAINT accounts_not_negative
    CHECK (may_go_negative OR kind = 'earnings' OR balance >= 0);

ALTER TABLE transfers ADD COLUMN fee_bps integer CHECK (fee_bps BETWEEN 0 AND 10000);
CREATE INDEX transfers_reverses ON transfers (reverses_id) WHERE reverses_id IS NOT NULL;
CREATE INDEX entries_account_time ON entries (account_id, created_at, id);

CREATE TABLE holds (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id),
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'posted', 'voided')),
    reference    text NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    transfer_id  bigint REFERENCES transfers (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'pending';

CREATE TABLE platform_fee_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bps         integer NOT NULL CHECK (bps BETWEEN 0 AND 5000),
    changed_by  text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE content (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id  text NOT NULL REFERENCES users (id),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    price       bigint NOT NULL CHECK (price > 0),
    currency    char(3) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX content_creator ON content (creator_id, id);

CREATE TABLE payments (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference        text NOT NULL UNIQUE,
    user_id          text NOT NULL REFERENCES users (id),
    provider         text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         char(3) NOT NULL,
    purpose          text NOT NULL CHECK (purpose IN ('topup', 'tip', 'purchase')),
    details          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_ref     text,
    checkout_url     text,
    refunded_amount  bigint NOT NULL DEFAULT 0,
    failure_reason   text,
    transfer_id      bigint REFERENCES transfers (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_refunds_within CHECK (refunded_amount BETWEEN 0 AND amount)
);
CREATE INDEX payments_user ON payments (user_id, id);
CREATE INDEX payments_pending ON payments (created_at) WHERE status = 'pending';

CREATE TABLE entitlements (
    buyer_id     text NOT NULL REFERENCES users (id),
    content_id   bigint NOT NULL REFERENCES content (id),
    transfer_id  bigint NOT NULL REFERENCES transfers (id),
    payment_id   bigint REFERENCES payments (id),
    amount       bigint NOT NULL,
    fee          bigint NOT NULL,
    currency     char(3) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (buyer_id, content_id)
);
CREATE INDEX entitlements_content ON entitlements (content_id);

ALTER TABLE tips ADD COLUMN payment_id bigint REFERENCES payments (id);

CREATE TABLE webhook_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     text NOT NULL,
    event_id     text NOT NULL,
    event_type   text,
    outcome      text NOT NULL
                 CHECK (outcome IN ('applied', 'ignored', 'mismatch', 'rejected', 'unknown')),
    detail       text,
    payload      text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_events_once UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_outcome ON webhook_events (outcome, received_at);

CREATE TABLE payouts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference       text NOT NULL UNIQUE,
    creator_id      text NOT NULL REFERENCES users (id),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        char(3) NOT NULL,
    provider        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'paid', 'failed', 'reversed')),
    hold_id         bigint NOT NULL REFERENCES holds (id),
    provider_ref    text,
    transfer_id     bigint REFERENCES transfers (id),
    failure_reason  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payouts_creator ON payouts (creator_id, id);

CREATE TABLE refunds (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reference     text NOT NULL UNIQUE,
    payment_id    bigint NOT NULL REFERENCES payments (id),
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      char(3) NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processed', 'failed')),
    provider_ref  text UNIQUE,
    transfer_id   bigint NOT NULL REFERENCES transfers (id),
    requested_by  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_payment ON refunds (payment_id);
"""

DOWNGRADE = """
DROP TABLE refunds;
DROP TABLE payouts;
DROP TABLE webhook_events;
ALTER TABLE tips DROP COLUMN payment_id;
DROP TABLE entitlements;
DROP TABLE payments;
DROP TABLE content;
DROP TABLE platform_fee_changes;
DROP TABLE holds;
DROP INDEX entries_account_time;
DROP INDEX transfers_reverses;
ALTER TABLE transfers DROP COLUMN fee_bps;
ALTER TABLE accounts DROP CONSTRAINT accounts_not_negative;
ALTER TABLE accounts ADD CONSTRAINT accounts_not_negative CHECK (may_go_negative OR balance >= 0);
ALTER TABLE accounts DROP CONSTRAINT accounts_identity;
ALTER TABLE accounts ADD CONSTRAINT accounts_owner_kind_currency
    UNIQUE NULLS NOT DISTINCT (owner_id, kind, currency);
ALTER TABLE accounts DROP COLUMN provider;
ALTER TABLE accounts DROP COLUMN held;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
