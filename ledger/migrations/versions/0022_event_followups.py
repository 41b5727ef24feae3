"""One place decides what follows a commit: a trigger on `events`.

Until now the worker's follow-ups were written by whoever moved the money: a trigger on `tips`
(a tip's receipt and Web Push alert, 0011), a CTE of hub_webhook_topups and a statement of
hub_webhook_card_sales and of the webhook route (a succeeded payment checked with its provider),
a statement of hub_payout_requests (a payout sent), and an enqueue after the admin refund
route's commit (a refund asked of the provider). Every one of them follows an event the same
transaction writes, so they are now derived from the event rows, in the statement that writes
them, by one trigger on `events` that also writes the platform's webhook deliveries (0019):

| event             | outbox row (jobs.outbox)          |
|-------------------|-----------------------------------|
| tip.received      | ('tip', data.tip_id)              |
| payment.succeeded | ('payment.verify', data.id)       |
| payout.requested  | ('payout.send', data.id)          |
| refund.processed, | ('refund.send', data.id)          |
|  status pending   |                                   |

`payout.requested` is new: a payout request now tells the creator (and the platform's
webhooks) that it was taken, with the payout as its data, before its balance.updated. The
sockets are the third consumer of the same rows (the committing node publishes them, the
sweeper what stays unpublished), so every follow-up of a money movement is read from what it
wrote to the event log, in one place for the database's part.

The functions are rebuilt from their previous migrations' text with the outbox statements taken
out (each anchor found exactly once); the downgrade puts everything back as it was.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from importlib import import_module

from ledger.migrations.helpers import execute_script

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _function(upgrade: str, name: str) -> str:
    """The CREATE FUNCTION statement of `name` in a migration's script, as CREATE OR REPLACE."""
    start = upgrade.index(f"CREATE FUNCTION {name}(")
    end = upgrade.index("\n$fn$;\n", start) + len("\n$fn$;\n")
    return upgrade[start:end].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _edited(definition: str, changes: tuple[tuple[str, str], ...]) -> str:
    for old, new in changes:
        assert definition.count(old) == 1, old
        definition = definition.replace(old, new)
    return definition


def _upgrade_of(module: str) -> str:
    upgrade: str = import_module(f"ledger.migrations.versions.{module}").UPGRADE
    return upgrade


_TOPUPS = _function(_upgrade_of("0012_webhook_topups"), "hub_webhook_topups")
_TOPUPS_AFTER = _edited(
    _TOPUPS,
    (
        (
            "    ), verify AS (\n"
            "        INSERT INTO outbox (topic, ref)\n"
            "        SELECT 'payment.verify', payment_id FROM posted ORDER BY i\n",
            "",
        ),
    ),
)

_CARD_SALES = _function(_upgrade_of("0016_webhook_card_sales"), "hub_webhook_card_sales")
_CARD_SALES_AFTER = _edited(
    _CARD_SALES,
    (("        INSERT INTO outbox (topic, ref) VALUES ('payment.verify', v_payment[i]);\n", ""),),
)

_PAYOUTS = _function(_upgrade_of("0014_payout_requests"), "hub_payout_requests")
_PAYOUTS_AFTER = _edited(
    _PAYOUTS,
    (
        ("        INSERT INTO outbox (topic, ref) VALUES ('payout.send', p.id);\n", ""),
        (
            "        e_ord := e_ord || i;\n"
            "        e_user := e_user || p_creator[i];\n"
            "        e_type := e_type || 'balance.updated'::text;\n"
            "        e_data := e_data || jsonb_build_object(\n",
            "        e_ord := e_ord || ARRAY[i, i];\n"
            "        e_user := e_user || ARRAY[p_creator[i], p_creator[i]];\n"
            "        e_type := e_type || ARRAY['payout.requested', 'balance.updated'];\n"
            "        e_data := e_data || v_body[i]::jsonb || jsonb_build_object(\n",
        ),
    ),
)

_DELIVERIES_0019 = _upgrade_of("0019_outbound_webhooks")
_DELIVERIES_0019 = _DELIVERIES_0019[
    _DELIVERIES_0019.index("CREATE FUNCTION hub_webhook_deliveries()") :
]

_OUTBOX_0011 = _upgrade_of("0011_outbox")
_OUTBOX_0011 = _OUTBOX_0011[
    _OUTBOX_0011.index("CREATE FUNCTION hub_outbox_tips()") : _OUTBOX_0011.index(
        "INSERT INTO outbox (topic, ref)\nSELECT 'tip', t.transfer_id"
    )
]

UPGRADE = rf"""
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check CHECK (topic IN (
    'tip', 'receipt.email', 'push.tip', 'payment.verify', 'payout.send', 'refund.send'));
DROP TRIGGER tips_outbox ON tips;
DROP FUNCTION hub_outbox_tips();
DROP TRIGGER events_webhook_deliveries ON events;
DROP FUNCTION hub_webhook_deliveries();

CREATE FUNCTION hub_event_followups() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- The worker's follow-ups (jobs.outbox), in the events' order: an event type, the topic
    -- it asks for, the field of its data that names the row the job works on.
    INSERT INTO outbox (topic, ref)
    SELECT f.topic, (e.data ->> f.field)::bigint
    FROM new_events e
    JOIN (VALUES ('tip.received', 'tip', 'tip_id'),
                 ('payment.succeeded', 'payment.verify', 'id'),
                 ('payout.requested', 'payout.send', 'id'),
                 ('refund.processed', 'refund.send', 'id')) AS f (type, topic, field)
      ON f.type = e.type
    -- a refund the provider already made (started from its dashboard) is not sent back to it
    WHERE f.topic <> 'refund.send' OR e.data ->> 'status' = 'pending'
    ORDER BY e.id;

    -- The platform's webhooks: a delivery per (endpoint, event) its app's endpoints want
    -- (jobs.webhooks); none of its own notifications, which it knows.
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled_at IS NULL) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, event_id, user_id, seq, type, payload)
    SELECT ep.id, e.id, e.user_id, e.seq, e.type,
           jsonb_build_object(
               'id', 'evt_' || e.id, 'type', e.type, 'timestamp', e.occurred_at,
               'app_id', u.app_id, 'user_id', e.user_id, 'seq', e.seq, 'data', e.data
           )::text
    FROM new_events e
    JOIN users u ON u.id = e.user_id
    JOIN webhook_endpoints ep
      ON ep.app_id = u.app_id AND ep.disabled_at IS NULL
     AND (cardinality(ep.event_types) = 0 OR e.type = ANY (ep.event_types))
    WHERE e.type NOT LIKE 'app.%' AND e.type NOT LIKE 'public.app.%'
    ORDER BY e.id, ep.id;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER events_followups
    AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION hub_event_followups();

{_TOPUPS_AFTER}
{_CARD_SALES_AFTER}
{_PAYOUTS_AFTER}
"""

DOWNGRADE = f"""
DELETE FROM outbox WHERE topic = 'refund.send';  -- the resweep enqueues these refunds
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('tip', 'receipt.email', 'push.tip', 'payment.verify', 'payout.send'));
DROP TRIGGER events_followups ON events;
DROP FUNCTION hub_event_followups();
{_DELIVERIES_0019}
{_OUTBOX_0011}
{_TOPUPS}
{_CARD_SALES}
{_PAYOUTS}
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
