"""Operations: jobs that failed for good, reconciliation runs, revenue rollups.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from ledger.migrations.helpers import execute_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE failed_jobs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job        text NOT NULL,
    job_id     text,
    args       jsonb NOT NULL DEFAULT '[]',
    error      text NOT NULL,
    tries      integer NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failed_jobs_recent ON failed_jobs (failed_at DESC);

CREATE TABLE reconciliations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    ok           boolean,
    report       jsonb NOT NULL DEFAULT '{}'
);

-- Daily revenue per currency, and each creator's daily net: the analytics API reads these.
CREATE TABLE revenue_daily (
    day       date NOT NULL,
    currency  char(3) NOT NULL,
    gross     bigint NOT NULL,
    fees      bigint NOT NULL,
    tips      integer NOT NULL,
    sales     integer NOT NULL,
    PRIMARY KEY (day, currency)
);
CREATE TABLE creator_daily (
    day         date NOT NULL,
    creator_id  text NOT NULL,
    currency    char(3) NOT NULL,
    net         bigint NOT NULL,
    PRIMARY KEY (day, creator_id, currency)
);
CREATE INDEX creator_daily_ranking ON creator_daily (currency, day, net DESC);
CREATE INDEX tips_created ON tips (created_at);
CREATE INDEX entitlements_created ON entitlements (created_at);
CREATE INDEX payments_created ON payments (created_at);
CREATE INDEX events_occurred ON events (occurred_at);
"""

DOWNGRADE = """
DROP INDEX events_occurred;
DROP INDEX payments_created;
DROP INDEX entitlements_created;
DROP INDEX tips_created;
DROP TABLE creator_daily;
DROP TABLE revenue_daily;
DROP TABLE reconciliations;
DROP TABLE failed_jobs;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
