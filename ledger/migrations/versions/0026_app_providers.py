"""An app's own provider accounts: the Paystack or Stripe keys its payments, payouts and refunds
go through instead of the deployment's. The secrets are stored encrypted with the deployment's
HUB_SECRETS_KEY (ledger/app_providers.py), never as they are.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE app_providers (
    app_id text NOT NULL REFERENCES apps (id),
    provider text NOT NULL CHECK (provider IN ('paystack', 'stripe')),
    secrets text NOT NULL,
    base_url text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, provider),
    CHECK (app_id <> 'default')
);
"""

DOWNGRADE = """
DROP TABLE app_providers;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
