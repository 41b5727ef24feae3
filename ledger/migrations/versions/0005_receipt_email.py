"""Users' email addresses (from their tokens) and emailed receipts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from ledger.migrations.helpers import execute_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE users ADD COLUMN email text CHECK (length(email) <= 254);
ALTER TABLE receipts ADD COLUMN emailed_at timestamptz;
-- A succeeded payment checked against the provider's own API afterwards.
ALTER TABLE payments ADD COLUMN verified_at timestamptz;
ALTER TABLE payments ADD COLUMN verification text;
"""

DOWNGRADE = """
ALTER TABLE payments DROP COLUMN verification;
ALTER TABLE payments DROP COLUMN verified_at;
ALTER TABLE receipts DROP COLUMN emailed_at;
ALTER TABLE users DROP COLUMN email;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
