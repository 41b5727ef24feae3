"""What each app sets for itself: its platform fee, the currencies its users may use, its
server API's rate limit and the browser origins its pages are served from. NULL (or none) is the
deployment's setting; the default app's are always the deployment's (HUB_PLATFORM_FEE_BPS and
the admins' platform-fee route, HUB_CURRENCIES, HUB_RATE_LIMIT_SERVER, HUB_CORS_ORIGINS), as its
tokens are.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE apps
    ADD COLUMN fee_bps integer CHECK (fee_bps BETWEEN 0 AND 5000),
    ADD COLUMN currencies text[] CHECK (
        cardinality(currencies) BETWEEN 1 AND 20
        AND array_to_string(currencies, ',') ~ '^[A-Z]{3}(,[A-Z]{3})*$'
    ),
    ADD COLUMN rate_limit_server text CHECK (length(rate_limit_server) BETWEEN 1 AND 100),
    ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(allowed_origins) <= 20),
    ADD CONSTRAINT apps_default_settings CHECK (
        id <> 'default' OR (fee_bps IS NULL AND currencies IS NULL
                            AND rate_limit_server IS NULL AND allowed_origins = '{}')
    );
"""

DOWNGRADE = """
ALTER TABLE apps
    DROP COLUMN fee_bps, DROP COLUMN currencies, DROP COLUMN rate_limit_server,
    DROP COLUMN allowed_origins;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
