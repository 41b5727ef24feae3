"""Dead-letter retries, and an index of the payments their provider did not confirm.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from ledger.migrations.helpers import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
-- A failed job is retried at most once: the retry is a new job (retry_job_id); if it fails
-- for good too, it is a new row.
ALTER TABLE failed_jobs ADD COLUMN retried_at timestamptz;
ALTER TABLE failed_jobs ADD COLUMN retried_by text;
ALTER TABLE failed_jobs ADD COLUMN retry_job_id text;
ALTER TABLE failed_jobs ADD CONSTRAINT failed_jobs_retry_recorded
    CHECK ((retried_at IS NULL) = (retry_job_id IS NULL));
-- hub_payments_unconfirmed counts these every few seconds on every node: a small index, not a
-- scan of all payments.
CREATE INDEX payments_unconfirmed ON payments (id) WHERE verification LIKE 'NOT CONFIRMED%';
"""

DOWNGRADE = """
DROP INDEX payments_unconfirmed;
ALTER TABLE failed_jobs DROP CONSTRAINT failed_jobs_retry_recorded;
ALTER TABLE failed_jobs DROP COLUMN retry_job_id;
ALTER TABLE failed_jobs DROP COLUMN retried_by;
ALTER TABLE failed_jobs DROP COLUMN retried_at;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
