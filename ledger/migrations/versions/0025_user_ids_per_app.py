"""A user id is unique within its app, not across apps (ledger.ids): a user of an app other
than the default one is stored as `<app>\\x1f<id>`, so that two platforms may both have a user
"1". The users of other apps that exist already are renamed so, in every table that names
them (the foreign keys are dropped while the ids change, and made again); the default app's
users, and everything of a deployment that knew no apps, keep their ids. A check makes every
user's id name their app from now on.

The Idempotency-Keys of an app's API keys move from `app\\x1f<app>` to `\\x1f<app>`: the old
form is the stored id of the user `<app>` of an app called `app`, the new one no stored id.

Old events, webhook payloads and provider metadata keep the ids they were written with: the
platform's own, which is what they show. The downgrade fails (a duplicate key) once two apps
have a user of the same id: there is no going back to ids unique across apps then.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# (table, column, its foreign key to users.id or None)
USER_COLUMNS = (
    ("accounts", "owner_id", "accounts_owner_id_fkey"),
    ("tips", "fan_id", "tips_fan_id_fkey"),
    ("tips", "creator_id", "tips_creator_id_fkey"),
    ("events", "user_id", "events_user_id_fkey"),
    ("receipts", "payer_id", "receipts_payer_id_fkey"),
    ("receipts", "payee_id", "receipts_payee_id_fkey"),
    ("content", "creator_id", "content_creator_id_fkey"),
    ("payments", "user_id", "payments_user_id_fkey"),
    ("entitlements", "buyer_id", "entitlements_buyer_id_fkey"),
    ("payouts", "creator_id", "payouts_creator_id_fkey"),
    ("overlay_keys", "creator_id", "overlay_keys_creator_id_fkey"),
    ("push_subscriptions", "user_id", "push_subscriptions_user_id_fkey"),
    ("creator_goals", "creator_id", "creator_goals_creator_id_fkey"),
    ("creator_daily", "creator_id", None),
    ("webhook_deliveries", "user_id", None),
    ("idempotency_keys", "caller_id", None),
)


def _rename(old: str, new: str, keys: str) -> str:
    """The script that renames each user of `keys` (the users to rename) from `old` to `new`."""
    drop = "".join(
        f"ALTER TABLE {table} DROP CONSTRAINT {fkey};\n" for table, _, fkey in USER_COLUMNS if fkey
    )
    update = "".join(
        f"UPDATE {table} t SET {column} = r.new FROM renamed r WHERE t.{column} = r.old;\n"
        for table, column, _ in USER_COLUMNS
    )
    add = "".join(
        f"ALTER TABLE {table} ADD CONSTRAINT {fkey} FOREIGN KEY ({column}) REFERENCES users(id);\n"
        for table, column, fkey in USER_COLUMNS
        if fkey
    )
    return f"""
CREATE TEMPORARY TABLE renamed AS
    SELECT {old} AS old, {new} AS new FROM users WHERE {keys};
{drop}UPDATE users t SET id = r.new FROM renamed r WHERE t.id = r.old;
{update}-- a card tip's creator, read when its payment succeeds
UPDATE payments p SET details = jsonb_set(p.details, '{{creator_id}}', to_jsonb(r.new))
    FROM renamed r WHERE p.details->>'creator_id' = r.old;
{add}DROP TABLE renamed;
"""


# Every user's id names their app (ledger.ids); the separator is \x1f.
CHECK = r"""
ALTER TABLE users ADD CONSTRAINT users_id_of_app CHECK (
    CASE WHEN app_id = 'default' THEN strpos(id, E'\x1f') = 0
         ELSE starts_with(id, app_id || E'\x1f') END);
"""

UPGRADE = (
    r"""
UPDATE idempotency_keys SET caller_id = E'\x1f' || substr(caller_id, 5)
    WHERE caller_id LIKE E'app\x1f%';
"""
    + _rename("id", r"app_id || E'\x1f' || id", "app_id <> 'default'")
    + CHECK
)

DOWNGRADE = (
    "ALTER TABLE users DROP CONSTRAINT users_id_of_app;\n"
    + _rename("id", r"substr(id, strpos(id, E'\x1f') + 1)", "app_id <> 'default'")
    + r"""
UPDATE idempotency_keys SET caller_id = 'app' || caller_id WHERE caller_id LIKE E'\x1f%';
"""
)


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
