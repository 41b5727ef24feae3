"""Apps and their API keys: the platforms a deployment serves, and how their backends call it.

An app is one integrating platform. Every user belongs to one app (`users.app_id`); the data a
user owns (accounts, events, content, payments) belongs to the user's app through the user. A
deployment that knew no apps is one app, `default`: its users are moved into it here.

An API key is a platform backend's credential: the secret is shown once and kept only as its
SHA-256 (a key is 32 random bytes, so a slow hash would protect nothing more); `prefix` is the
visible part that finds the row. `expires_at` is set by a rotation (the old key keeps working
for the overlap) or at creation; `revoked_at` ends a key at once.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE apps (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO apps (id, name) VALUES ('default', 'Default app');

ALTER TABLE users ADD COLUMN app_id text NOT NULL DEFAULT 'default' REFERENCES apps (id);
CREATE INDEX users_app ON users (app_id, id);

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id        text NOT NULL REFERENCES apps (id),
    prefix        text NOT NULL UNIQUE,
    secret_hash   text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    scopes        text[] NOT NULL CHECK (
        cardinality(scopes) > 0
        AND scopes <@ ARRAY['publish', 'read', 'payments', 'admin']::text[]
    ),
    label         text CHECK (length(label) <= 80),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    rotated_to    bigint REFERENCES api_keys (id)
);
CREATE INDEX api_keys_app ON api_keys (app_id, id);
"""

DOWNGRADE = """
DROP TABLE api_keys;
ALTER TABLE users DROP COLUMN app_id;
DROP TABLE apps;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
