"""Each app's own user tokens: the `iss` that names the app in a token, and how its tokens are
verified: an HS256 secret, or a JWKS URL (RS256/ES256, for platforms on Auth0/Keycloak-style
identity). An app with neither has no user tokens (its users exist through the server API).
The default app's tokens stay what the settings say (HUB_JWT_SECRET, HUB_JWT_ISSUER).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE apps
    ADD COLUMN jwt_issuer text UNIQUE CHECK (length(jwt_issuer) BETWEEN 1 AND 255),
    ADD COLUMN jwt_audience text CHECK (length(jwt_audience) BETWEEN 1 AND 255),
    ADD COLUMN jwt_secret text CHECK (length(jwt_secret) >= 32),
    ADD COLUMN jwks_url text CHECK (jwks_url ~ '^https?://'),
    ADD CONSTRAINT apps_one_token_key CHECK (jwt_secret IS NULL OR jwks_url IS NULL),
    ADD CONSTRAINT apps_tokens_named CHECK (
        (jwt_secret IS NULL AND jwks_url IS NULL) OR jwt_issuer IS NOT NULL
    ),
    ADD CONSTRAINT apps_default_by_settings CHECK (
        id <> 'default' OR (jwt_secret IS NULL AND jwks_url IS NULL AND jwt_issuer IS NULL)
    );
"""

DOWNGRADE = """
ALTER TABLE apps
    DROP COLUMN jwt_issuer, DROP COLUMN jwt_audience, DROP COLUMN jwt_secret,
    DROP COLUMN jwks_url;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
