"""Web Push subscriptions: where to send a creator's tip alerts when no page of theirs is open.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from ledger.migrations.helpers import execute_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE push_subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id),
    -- One browser's push endpoint belongs to one user at a time: re-subscribing moves it.
    endpoint    text NOT NULL UNIQUE CHECK (length(endpoint) <= 2048),
    p256dh      text NOT NULL,  -- the browser's ECDH public key (base64url, 65 bytes)
    auth        text NOT NULL,  -- its authentication secret (base64url, 16 bytes)
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id, created_at);
"""

DOWNGRADE = """
DROP TABLE push_subscriptions;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
