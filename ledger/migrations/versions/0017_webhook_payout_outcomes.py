"""Payout outcomes by webhook in one call: hub_webhook_payout_outcomes.

A provider's word on a payout (transfer succeeded, failed, reversed) is, in
ledger.settlement.apply_event, the inbox row, the payout locked and matched, then
ledger.payouts.settle_payout: a success posts the hold (earnings to the provider's clearing
account), a failure voids it, a reversal after success posts the money back; the payout's new
status, payout.paid or payout.failed and the earnings' balance.updated. What cannot be done (the
hold is no longer pending, the earnings cannot cover it, the transfer's reference is taken) is a
`mismatch` with its reason, as apply_event's savepoint records it; an outcome the payout already
has is `ignored`. This function does that for a batch, in one call: the inbox rows, the payouts
locked in id order, the clearing accounts made on first use, every account locked once (owners'
first, then system accounts, by id), then each event in arrival order (payouts are rare: a loop
inside the call, not set-based), balances once, events numbered per user.

Answers are data: (ord, outcome, detail, events), as hub_webhook_topups answers.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE FUNCTION hub_webhook_payout_outcomes(
    p_provider text[], p_event_id text[], p_type text[], p_kind text[], p_reference text[],
    p_reference_repr text[], p_amount bigint[], p_reason text[], p_payload text[]
) RETURNS TABLE (ord integer, outcome text, detail text, events jsonb)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_provider), 0);
    v_outcome text[] := array_fill(NULL::text, ARRAY[n]);
    v_detail text[] := array_fill(NULL::text, ARRAY[n]);
    v_delivery bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_live boolean[] := array_fill(false, ARRAY[n]);
    v_payout bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_earnings bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_clearing bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_events jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    a_id bigint[] := '{}';
    a_balance bigint[] := '{}';
    a_held bigint[] := '{}';
    a_version bigint[] := '{}';
    a_first_version bigint[] := '{}';
    a_negative boolean[] := '{}';
    a_kind text[] := '{}';
    e_ord integer[] := '{}';
    e_user text[] := '{}';
    e_type text[] := '{}';
    e_data jsonb[] := '{}';
    v_transfer bigint;
    v_event text;
    e integer;
    c integer;
    h record;
    p record;
    q record;
    r record;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- 1. The inbox, once per (provider, event id).
    FOR r IN SELECT * FROM hub_record_deliveries(p_provider, p_event_id, p_type, p_payload,
                                                  NULL) LOOP
        IF r.delivery IS NULL THEN
            v_outcome[r.ord] := 'duplicate';
        ELSE
            v_delivery[r.ord] := r.delivery;
            v_live[r.ord] := true;
        END IF;
    END LOOP;

    -- 2. The payouts, locked in id order, and settlement._transfer_outcome's checks.
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        IF p_reference[i] IS NULL OR p_reference[i] = '' THEN
            v_outcome[i] := 'mismatch';
            v_detail[i] := 'the transfer event names no reference';
            v_live[i] := false;
        END IF;
    END LOOP;
    FOR p IN
        SELECT id, reference, provider, amount FROM payouts
        WHERE reference IN (SELECT p_reference[i] FROM hub_batch(n) AS i WHERE v_live[i])
        ORDER BY id
        FOR UPDATE
    LOOP
        FOR r IN SELECT i FROM hub_batch(n) AS i WHERE v_live[i] AND p_reference[i] = p.reference
        LOOP
            IF p.provider <> p_provider[r.i] THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := 'payout ' || p.reference || ' belongs to ' || p.provider;
            ELSIF p_amount[r.i] IS NOT NULL AND p_amount[r.i] <> p.amount THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := 'amount ' || p_amount[r.i] || ' does not match the payout''s';
            ELSE
                v_payout[r.i] := p.id;
            END IF;
        END LOOP;
    END LOOP;
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        IF v_payout[i] IS NULL THEN
            v_live[i] := false;
            IF v_outcome[i] IS NULL THEN
                v_outcome[i] := 'mismatch';
                v_detail[i] := 'no payout with reference ' || p_reference_repr[i];
            END IF;
        END IF;
    END LOOP;

    -- 3. The clearing accounts (made on first use, as ensure_system_account does) and the
    -- creators' earnings accounts; every one locked once, owners' first, then system, by id.
    INSERT INTO accounts (owner_id, kind, currency, provider, may_go_negative)
    SELECT DISTINCT NULL::text, 'provider_clearing', y.currency, y.provider, true
    FROM hub_batch(n) AS i JOIN payouts y ON y.id = v_payout[i]
    WHERE v_live[i] AND NOT EXISTS (
        SELECT 1 FROM accounts a WHERE a.owner_id IS NULL AND a.kind = 'provider_clearing'
           AND a.currency = y.currency AND a.provider = y.provider)
    ON CONFLICT DO NOTHING;
    FOR r IN
        SELECT i,
               (SELECT id FROM accounts WHERE owner_id IS NULL AND kind = 'provider_clearing'
                   AND currency = y.currency AND provider = y.provider) AS clearing,
               (SELECT id FROM accounts WHERE owner_id = y.creator_id AND kind = 'earnings'
                   AND currency = y.currency AND provider IS NULL) AS earnings
        FROM hub_batch(n) AS i JOIN payouts y ON y.id = v_payout[i]
        WHERE v_live[i]
    LOOP
        IF r.clearing IS NULL OR r.earnings IS NULL THEN
            RAISE EXCEPTION 'payout %: no clearing or earnings account', v_payout[r.i];
        END IF;
        v_clearing[r.i] := r.clearing;
        v_earnings[r.i] := r.earnings;
    END LOOP;
    FOR r IN
        SELECT a.id, a.balance, a.held, a.may_go_negative, a.version, a.kind
        FROM accounts a
        WHERE a.id IN (SELECT unnest(ARRAY[v_earnings[i], v_clearing[i]])
                       FROM hub_batch(n) AS i WHERE v_live[i])
        ORDER BY a.owner_id IS NULL, a.id
        FOR UPDATE
    LOOP
        a_id := a_id || r.id;
        a_balance := a_balance || r.balance;
        a_held := a_held || r.held;
        a_version := a_version || r.version;
        a_first_version := a_first_version || r.version;
        a_negative := a_negative || r.may_go_negative;
        a_kind := a_kind || r.kind;
    END LOOP;

    -- 4. In arrival order: settle_payout.
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        SELECT * INTO q FROM payouts WHERE id = v_payout[i];
        SELECT * INTO h FROM holds WHERE id = q.hold_id;
        e := array_position(a_id, v_earnings[i]);
        c := array_position(a_id, v_clearing[i]);
        v_event := NULL;
        IF p_kind[i] = 'transfer.succeeded' AND q.status IN ('pending', 'processing') THEN
            -- post_hold: release the hold, then post it (funds, then the reference)
            IF h.status <> 'pending' THEN
                v_detail[i] := 'HoldNotPending: hold ' || h.id || ' is not pending';
            ELSIF NOT (a_negative[e]
                       OR a_balance[e] - h.amount >= a_held[e] - h.amount) THEN
                v_detail[i] := 'InsufficientFunds: the earnings account has too little '
                    || h.currency || ' for this transfer';
            ELSIF EXISTS (SELECT 1 FROM transfers WHERE reference = 'payout:' || q.reference) THEN
                v_detail[i] := 'DuplicateTransfer: a transfer with reference payout:'
                    || q.reference || ' exists';
            ELSE
                UPDATE holds SET status = 'posted', resolved_at = now() WHERE id = h.id;
                a_held[e] := a_held[e] - h.amount;
                a_version[e] := a_version[e] + 1;
                INSERT INTO transfers (kind, currency, reference, metadata)
                VALUES ('payout', h.currency, 'payout:' || q.reference, '{}'::jsonb)
                RETURNING id INTO v_transfer;
                a_balance[e] := a_balance[e] - h.amount;
                a_version[e] := a_version[e] + 1;
                a_balance[c] := a_balance[c] + h.amount;
                a_version[c] := a_version[c] + 1;
                INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
                VALUES (v_transfer, v_earnings[i], -h.amount, h.currency, a_balance[e]),
                       (v_transfer, v_clearing[i], h.amount, h.currency, a_balance[c]);
                UPDATE holds SET transfer_id = v_transfer WHERE id = h.id;
                UPDATE payouts SET status = 'paid', transfer_id = v_transfer, updated_at = now()
                WHERE id = q.id;
                v_event := 'payout.paid';
            END IF;
        ELSIF p_kind[i] IN ('transfer.failed', 'transfer.reversed')
              AND q.status IN ('pending', 'processing') THEN
            IF h.status <> 'pending' THEN
                v_detail[i] := 'HoldNotPending: hold ' || h.id || ' is not pending';
            ELSE
                UPDATE holds SET status = 'voided', resolved_at = now() WHERE id = h.id;
                a_held[e] := a_held[e] - h.amount;
                a_version[e] := a_version[e] + 1;
                UPDATE payouts SET status = 'failed', updated_at = now(),
                    failure_reason = coalesce(p_reason[i], p_kind[i])
                WHERE id = q.id;
                v_event := 'payout.failed';
            END IF;
        ELSIF p_kind[i] = 'transfer.reversed' AND q.status = 'paid' THEN
            IF EXISTS (SELECT 1 FROM transfers WHERE reference = 'payout-reversal:' || q.reference)
            THEN
                v_detail[i] := 'DuplicateTransfer: a transfer with reference payout-reversal:'
                    || q.reference || ' exists';
            ELSE
                INSERT INTO transfers (kind, currency, reference, metadata, reverses_id)
                VALUES ('payout_reversal', q.currency, 'payout-reversal:' || q.reference,
                        '{}'::jsonb, q.transfer_id)
                RETURNING id INTO v_transfer;
                a_balance[c] := a_balance[c] - q.amount;
                a_version[c] := a_version[c] + 1;
                a_balance[e] := a_balance[e] + q.amount;
                a_version[e] := a_version[e] + 1;
                INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
                VALUES (v_transfer, v_clearing[i], -q.amount, q.currency, a_balance[c]),
                       (v_transfer, v_earnings[i], q.amount, q.currency, a_balance[e]);
                UPDATE payouts SET status = 'reversed', updated_at = now(),
                    failure_reason = coalesce(p_reason[i], 'reversed by the provider')
                WHERE id = q.id;
                v_event := 'payout.failed';
            END IF;
        ELSE
            v_outcome[i] := 'ignored';
            v_detail[i] := 'the payout is already ' || q.status;
            CONTINUE;
        END IF;
        IF v_event IS NULL THEN  -- refused: nothing written (apply_event's savepoint)
            v_outcome[i] := 'mismatch';
            CONTINUE;
        END IF;
        v_outcome[i] := 'applied';
        SELECT * INTO q FROM payouts WHERE id = v_payout[i];
        e_ord := e_ord || ARRAY[i, i];
        e_user := e_user || ARRAY[q.creator_id, q.creator_id];
        e_type := e_type || ARRAY[v_event, 'balance.updated'];
        e_data := e_data || ARRAY[
            jsonb_build_object(
                'id', q.id, 'reference', q.reference,
                'amount', jsonb_build_object('amount', q.amount, 'currency', q.currency),
                'provider', q.provider, 'status', q.status, 'failure_reason', q.failure_reason,
                'created_at', hub_isoformat(q.created_at),
                'updated_at', hub_isoformat(q.updated_at)),
            jsonb_build_object(
                'account_id', a_id[e], 'kind', a_kind[e], 'currency', q.currency,
                'balance', a_balance[e], 'available', a_balance[e] - a_held[e],
                'version', a_version[e])];
    END LOOP;

    -- 5. Each account's balance, holds and version once; the events; the inbox's outcomes.
    UPDATE accounts a SET balance = x.balance, held = x.held, version = x.version
    FROM unnest(a_id, a_balance, a_held, a_version, a_first_version)
        AS x(id, balance, held, version, first)
    WHERE a.id = x.id AND x.version <> x.first;

    FOR r IN SELECT * FROM hub_record_events(e_ord, e_user, e_type, e_data) LOOP
        v_events[r.ord] := r.events;
    END LOOP;

    UPDATE webhook_events k SET outcome = v_outcome[i], detail = v_detail[i]
    FROM hub_batch(n) AS i
    WHERE k.id = v_delivery[i] AND (v_outcome[i] <> 'applied' OR v_detail[i] IS NOT NULL);

    RETURN QUERY
    SELECT i, v_outcome[i], v_detail[i], v_events[i] FROM hub_batch(n) AS i ORDER BY i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_webhook_payout_outcomes(
    text[], text[], text[], text[], text[], text[], bigint[], text[], text[]);
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
