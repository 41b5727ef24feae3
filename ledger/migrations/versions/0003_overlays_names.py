"""Overlay keys for creators' public tip alerts, and users' display names.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from ledger.migrations.helpers import execute_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE users ADD COLUMN display_name text CHECK (length(display_name) <= 80);

CREATE TABLE overlay_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    creator_id  text NOT NULL REFERENCES users (id),
    key_hash    text NOT NULL UNIQUE,  -- sha256 of the key: the key itself is shown once
    label       text CHECK (length(label) <= 80),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX overlay_keys_creator ON overlay_keys (creator_id, id);
"""

DOWNGRADE = """
DROP TABLE overlay_keys;
ALTER TABLE users DROP COLUMN display_name;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
