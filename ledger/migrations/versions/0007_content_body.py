"""The body of a piece of content: what a purchase gives access to (text, or a link).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from ledger.migrations.helpers import execute_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The listing indexes the read routes need exist since 0001/0002: content_creator
# (creator_id, id), tips_creator (creator_id, transfer_id), tips_fan (fan_id, transfer_id).
UPGRADE = """
ALTER TABLE content ADD COLUMN body text;
"""

DOWNGRADE = """
ALTER TABLE content DROP COLUMN body;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
