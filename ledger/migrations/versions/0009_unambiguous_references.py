"""Unambiguous transfer references for Idempotency-Keys; push endpoints that cannot be sent.

A wallet tip's reference was `tip:<fan>:<key>`, so fan `a` with key `b:K` and fan `a:b` with
key `K` made the same reference, and the second got 409 duplicate_transfer. References are now
`key:<kind>:<length of the caller's id>:<caller>:<key>` (ledger.idempotency.transfer_reference),
and existing ones are rewritten to that form (transfers are otherwise append-only) from their
tip or entitlement row (a card payment's
`tip:payment:<reference>` is a different thing and stays): a key used before the upgrade still
finds its transfer.

A push endpoint with a tab, a line break or another control character passed the old check and
can never be sent (the HTTP client refuses the URL): such subscriptions are deleted.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Transfers are append-only (trigger transfers_immutable): only this migration, in its own
# transaction, rewrites a column that is a uniqueness guard and not money.
UPGRADE = """
ALTER TABLE transfers DISABLE TRIGGER transfers_immutable;

UPDATE transfers t
SET reference = 'key:tip:' || length(tp.fan_id) || ':' || tp.fan_id || ':'
    || substr(t.reference, length('tip:' || tp.fan_id || ':') + 1)
FROM tips tp
WHERE tp.transfer_id = t.id
  AND tp.payment_id IS NULL
  AND left(t.reference, length('tip:' || tp.fan_id || ':')) = 'tip:' || tp.fan_id || ':';

UPDATE transfers t
SET reference = 'key:purchase:' || length(e.buyer_id) || ':' || e.buyer_id || ':'
    || substr(t.reference, length('purchase:' || e.buyer_id || ':') + 1)
FROM entitlements e
WHERE e.transfer_id = t.id
  AND e.payment_id IS NULL
  AND left(t.reference, length('purchase:' || e.buyer_id || ':'))
      = 'purchase:' || e.buyer_id || ':';

ALTER TABLE transfers ENABLE TRIGGER transfers_immutable;

DELETE FROM push_subscriptions WHERE endpoint ~ '[[:cntrl:][:space:]]';
"""

DOWNGRADE = """
ALTER TABLE transfers DISABLE TRIGGER transfers_immutable;

UPDATE transfers t
SET reference = 'tip:' || tp.fan_id || ':'
    || substr(t.reference, length('key:tip:' || length(tp.fan_id) || ':' || tp.fan_id || ':') + 1)
FROM tips tp
WHERE tp.transfer_id = t.id
  AND left(t.reference, length('key:tip:' || length(tp.fan_id) || ':' || tp.fan_id || ':'))
      = 'key:tip:' || length(tp.fan_id) || ':' || tp.fan_id || ':';

UPDATE transfers t
SET reference = 'purchase:' || e.buyer_id || ':'
    || substr(
        t.reference, length('key:purchase:' || length(e.buyer_id) || ':' || e.buyer_id || ':') + 1
    )
FROM entitlements e
WHERE e.transfer_id = t.id
  AND left(t.reference, length('key:purchase:' || length(e.buyer_id) || ':' || e.buyer_id || ':'))
      = 'key:purchase:' || length(e.buyer_id) || ':' || e.buyer_id || ':';

ALTER TABLE transfers ENABLE TRIGGER transfers_immutable;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
