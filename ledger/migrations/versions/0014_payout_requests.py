"""Payout requests in one call: hub_payout_requests holds a batch of creators' payouts.

Each command is ledger.payouts.request_payout: the creator's earnings account in the currency,
a hold of the amount on it if its available balance covers it (else the refusal), the payout row,
a balance.updated event, and, new here, the payout's sending as an outbox row
`('payout.send', payout id)` of the same transaction (the worker's drain enqueues
payouts.execute; the hub sends nothing to Redis for it). Keys are claimed and events written by
0013's functions; the earnings accounts of the batch are locked once, in id order, before any
hold. Payouts are rare, so the batch holds them one after another inside the call (a loop over
at most a batch of rows), not set-based.

The response body is built byte for byte as hub.idempotency.dump_json writes
ledger.payouts.Payout.as_json() (tests/ledger/test_payout_requests.py holds it to the SQLAlchemy
path).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('tip', 'receipt.email', 'push.tip', 'payment.verify', 'payout.send'));

CREATE FUNCTION hub_payout_requests(
    p_creator text[], p_key text[], p_hash text[], p_amount bigint[], p_currency text[],
    p_provider text[], p_reference text[], p_hold_ttl interval
) RETURNS TABLE (
    ord integer, status integer, body text, replayed boolean, refusal text, events jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_creator), 0);
    v_status integer[] := array_fill(0, ARRAY[n]);
    v_body text[] := array_fill(NULL::text, ARRAY[n]);
    v_replayed boolean[] := array_fill(false, ARRAY[n]);
    v_refusal text[] := array_fill(NULL::text, ARRAY[n]);
    v_claimed boolean[] := array_fill(false, ARRAY[n]);
    v_live boolean[] := array_fill(false, ARRAY[n]);
    v_earnings bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_events jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    e_ord integer[] := '{}';
    e_user text[] := '{}';
    e_type text[] := '{}';
    e_data jsonb[] := '{}';
    v_hold bigint;
    a record;
    p record;
    r record;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- 1. The keys.
    FOR r IN SELECT * FROM hub_claim_keys(p_creator, p_key, p_hash) LOOP
        IF r.claimed THEN
            v_claimed[r.ord] := true;
            v_live[r.ord] := true;
        ELSIF r.refusal IS NOT NULL THEN
            v_refusal[r.ord] := r.refusal;
        ELSE
            v_status[r.ord] := r.status;
            v_body[r.ord] := r.body;
            v_replayed[r.ord] := true;
        END IF;
    END LOOP;

    -- 2. The creator's earnings account (ledger.sales.creator_earnings's refusals).
    FOR r IN
        SELECT i, (SELECT role FROM users WHERE id = p_creator[i]) AS role,
               (SELECT id FROM accounts WHERE owner_id = p_creator[i] AND kind = 'earnings'
                   AND currency = p_currency[i] AND provider IS NULL) AS earnings
        FROM hub_batch(n) AS i WHERE v_live[i]
    LOOP
        IF r.role IS DISTINCT FROM 'creator' THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body(
                'creator_not_found', 'no creator ' || p_creator[r.i], 'creator_id');
            v_live[r.i] := false;
        ELSIF r.earnings IS NULL THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body('creator_not_found', 'creator ' || p_creator[r.i]
                || ' has no earnings account in ' || p_currency[r.i], 'currency');
            v_live[r.i] := false;
        ELSE
            v_earnings[r.i] := r.earnings;
        END IF;
    END LOOP;

    -- 3. Lock the batch's earnings accounts once, by id (owners' accounts, as everywhere).
    PERFORM 1 FROM accounts
    WHERE id IN (SELECT v_earnings[i] FROM hub_batch(n) AS i WHERE v_live[i])
    ORDER BY id FOR UPDATE;

    -- 4. In arrival order: the hold (ledger.holds.place_hold), the payout, its answer.
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        UPDATE accounts SET held = held + p_amount[i], version = version + 1
        WHERE id = v_earnings[i] AND currency = p_currency[i]
          AND balance - held >= p_amount[i]
        RETURNING id, kind, currency, balance, held, version INTO a;
        IF NOT FOUND THEN
            v_status[i] := 402;
            v_body[i] := hub_error_body('insufficient_funds',
                'not enough available balance for this hold', 'amount');
            v_live[i] := false;
            CONTINUE;
        END IF;
        INSERT INTO holds (account_id, amount, currency, status, reference, expires_at)
        VALUES (v_earnings[i], p_amount[i], p_currency[i], 'pending', p_reference[i],
                now() + p_hold_ttl)
        RETURNING id INTO v_hold;
        INSERT INTO payouts (reference, creator_id, amount, currency, provider, hold_id)
        VALUES (p_reference[i], p_creator[i], p_amount[i], p_currency[i], p_provider[i], v_hold)
        RETURNING * INTO p;
        INSERT INTO outbox (topic, ref) VALUES ('payout.send', p.id);
        v_status[i] := 201;
        v_body[i] := '{"id":' || p.id || ',"reference":' || to_json(p.reference)::text
            || ',"amount":{"amount":' || p.amount || ',"currency":'
            || to_json(p.currency::text)::text || '},"provider":' || to_json(p.provider)::text
            || ',"status":' || to_json(p.status)::text
            || ',"failure_reason":' || coalesce(to_json(p.failure_reason)::text, 'null')
            || ',"created_at":"' || hub_isoformat(p.created_at)
            || '","updated_at":"' || hub_isoformat(p.updated_at) || '"}';
        e_ord := e_ord || i;
        e_user := e_user || p_creator[i];
        e_type := e_type || 'balance.updated'::text;
        e_data := e_data || jsonb_build_object(
            'account_id', a.id, 'kind', a.kind, 'currency', a.currency, 'balance', a.balance,
            'available', a.balance - a.held, 'version', a.version);
    END LOOP;

    FOR r IN SELECT * FROM hub_record_events(e_ord, e_user, e_type, e_data) LOOP
        v_events[r.ord] := r.events;
    END LOOP;

    UPDATE idempotency_keys k
    SET status_code = v_status[i], response = v_body[i], completed_at = now()
    FROM hub_batch(n) AS i
    WHERE v_claimed[i] AND k.caller_id = p_creator[i] AND k.key = p_key[i];

    RETURN QUERY
    SELECT i, nullif(v_status[i], 0), v_body[i], v_replayed[i], v_refusal[i], v_events[i]
    FROM hub_batch(n) AS i ORDER BY i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_payout_requests(
    text[], text[], text[], bigint[], text[], text[], text[], interval);
DELETE FROM outbox WHERE topic = 'payout.send';
ALTER TABLE outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('tip', 'receipt.email', 'push.tip', 'payment.verify'));
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
