"""A creator's public state: a tipping goal (its progress is read from the ledger: the tips in
its currency since it started) and whether they are live now. Both go out on the creator's
public channel as `public.goal` and `public.live` events of the creator's log.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE creator_goals (
    creator_id  text PRIMARY KEY REFERENCES users (id),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 80),
    target      bigint NOT NULL CHECK (target > 0),
    currency    char(3) NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    -- the tips that count are those after this transfer (tips_creator's order: no new index
    -- on the tips' hot path)
    after_transfer_id  bigint NOT NULL
);
ALTER TABLE users
    ADD COLUMN live_since timestamptz,
    ADD COLUMN live_title text CHECK (length(live_title) <= 80);
"""

DOWNGRADE = """
ALTER TABLE users DROP COLUMN live_since, DROP COLUMN live_title;
DROP TABLE creator_goals;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
