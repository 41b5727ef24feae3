"""An outbox for follow-ups, written in the money's own transaction.

A committed tip used to be followed by an arq enqueue from the hub (its receipt, and a Web Push
alert), three Redis round trips per tip on the hot path, lost if Redis was away at that moment
(the resweep cron found them a minute later), and so was a verified payment's check with the
provider. Now every tip row, whatever path wrote it (wallet,
card, reconciliation), adds an outbox row in the same statement (a statement-level trigger), and
the worker drains the outbox in batches (jobs.outbox); a webhook's payment success adds its
('payment.verify', payment_id) the same way, in the webhook's transaction. Tips of the last
seven days without a receipt are put in the outbox here, so nothing the resweep would have
found is dropped.

It also mends hub_wallet_tips (0010): a request whose key was claimed and committed by another
transaction after this statement's snapshot was taken, but before its advisory lock was tried,
found the key's row taken (ON CONFLICT) yet invisible, and was refused as a reused key (422).
It is now "in flight" (409 with Retry-After): the retry finds the saved answer and replays it.

And it keeps hub_wallet_tips on index probes. Its statements drive a batch (at most 64 rows) into
tables that grow without bound (transfers, idempotency keys, users, accounts); a plan made while
a table was small (a fresh database, before autovacuum's next ANALYZE) scans it whole, and the
session keeps that plan: measured here, one tip's call went from 1.6 to 9 ms after 12,000 tips.
Seq scans are switched off for the function's own statements (hash joins stay, for the batch's
own rows joined to each other), which leaves an index probe per row for the tables: 1.0-1.2 ms a
call for one tip and 17 ms for 64, flat as the tables grow.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from importlib import import_module

from ledger.migrations.helpers import execute_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL
                CHECK (topic IN ('tip', 'receipt.email', 'push.tip', 'payment.verify')),
    ref         bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION hub_outbox_tips() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (topic, ref)
    SELECT 'tip', added.transfer_id FROM added ORDER BY added.transfer_id;
    RETURN NULL;
END $$;

CREATE TRIGGER tips_outbox AFTER INSERT ON tips
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION hub_outbox_tips();

INSERT INTO outbox (topic, ref)
SELECT 'tip', t.transfer_id
FROM tips t
LEFT JOIN receipts r ON r.transfer_id = t.transfer_id
WHERE r.id IS NULL AND t.created_at > now() - interval '7 days'
ORDER BY t.transfer_id;
"""

# 0010's function, as it was and as mended: the one branch added, nothing else changed.
_WALLET_TIPS_0010 = import_module("ledger.migrations.versions.0010_wallet_tips").UPGRADE
_WALLET_TIPS_0010 = _WALLET_TIPS_0010[_WALLET_TIPS_0010.index("CREATE FUNCTION hub_wallet_tips(") :]
_REUSED = "        ELSIF r.request_hash IS DISTINCT FROM p_hash[r.i] THEN\n"
assert _WALLET_TIPS_0010.count(_REUSED) == 1
_WALLET_TIPS_MENDED = _WALLET_TIPS_0010.replace(
    _REUSED,
    "        ELSIF r.request_hash IS NULL THEN  -- committed since this statement's snapshot\n"
    "            v_refusal[r.i] := 'in_flight';\n" + _REUSED,
)
_SIGNATURE = "text[], text[], text[], text[], bigint[], text[], integer[], text[], text[]"
UPGRADE += _WALLET_TIPS_MENDED.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
UPGRADE += f"""
ALTER FUNCTION hub_wallet_tips({_SIGNATURE})
    SET enable_seqscan = off;
"""

DOWNGRADE = (
    _WALLET_TIPS_0010.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    + """
DROP TRIGGER tips_outbox ON tips;
DROP FUNCTION hub_outbox_tips();
DROP TABLE outbox;
"""
)


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
