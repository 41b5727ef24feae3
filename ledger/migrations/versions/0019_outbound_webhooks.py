"""Outbound webhooks: an app's endpoints, one delivery per (endpoint, event), every attempt.

A delivery is written by a trigger on `events`, in the statement (so the transaction) that
writes the event: a committed event's deliveries cannot be lost, and a rolled-back one has
none. It carries the body it will send, always the same (the event log is pruned after a day;
a delivery is retried for about three days). The worker sends each (endpoint, user)'s
deliveries in `seq` order: the lowest pending one, once due and not leased, and nothing after
it meanwhile. An endpoint that is disabled gets no new deliveries.

The platform's own notifications (`app.*`, `public.app.*`) are not sent back to it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE webhook_endpoints (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id                 text NOT NULL REFERENCES apps (id),
    url                    text NOT NULL CHECK (length(url) <= 2048),
    description            text CHECK (length(description) <= 200),
    -- the Hub event types it wants; empty: all of them
    event_types            text[] NOT NULL DEFAULT '{}',
    secret                 text NOT NULL CHECK (secret LIKE 'whsec_%'),
    -- the secret before the last rotation, still signed with until previous_secret_until
    previous_secret        text,
    previous_secret_until  timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    disabled_at            timestamptz,
    disabled_reason        text,
    -- since when every attempt failed (NULL: the last one succeeded, or none was made)
    failing_since          timestamptz
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, id);

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         bigint NOT NULL,
    user_id          text NOT NULL,
    seq              bigint NOT NULL,
    type             text NOT NULL,
    payload          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    leased_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, user_id, seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    status_code   integer,
    response      text,
    duration_ms   integer NOT NULL,
    error         text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

CREATE FUNCTION hub_webhook_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
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

CREATE TRIGGER events_webhook_deliveries
    AFTER INSERT ON events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION hub_webhook_deliveries();
"""

DOWNGRADE = """
DROP TRIGGER events_webhook_deliveries ON events;
DROP FUNCTION hub_webhook_deliveries();
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
