"""A platform may ban one of its users for a while (POST /api/v1/users/{id}/ban): until
`banned_until` their tokens are refused over HTTP and sockets. The partial index keeps the
nodes' read of the bans in force (every few seconds) to the banned few.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE users ADD COLUMN banned_until timestamptz;
CREATE INDEX users_banned ON users (banned_until) WHERE banned_until IS NOT NULL;
"""

DOWNGRADE = """
DROP INDEX users_banned;
ALTER TABLE users DROP COLUMN banned_until;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
