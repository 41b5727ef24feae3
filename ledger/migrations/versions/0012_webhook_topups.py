"""Verified top-up webhooks in one call: hub_webhook_topups applies a batch of payment successes.

A payment-success event whose payment is a top-up is what most webhooks are (fans top up, then
tip and buy from the wallet). The function takes a batch of them, already verified and parsed
by the hub, and does what ledger.settlement.apply_event does for each, in the same order of
locks (inbox row, then payment, then accounts: owners', then system accounts, by id):

- records each delivery in the inbox once per (provider, event id): a copy, in the batch or
  before it, is a `duplicate` and changes nothing;
- matches the payment (reference, provider, amount, currency); a mismatch or an
  already-succeeded payment is recorded with its detail and moves no money;
- credits the wallet from the provider's clearing account (created on first use), with the
  payment's transfer, entries, balances, `payment.succeeded` and `balance.updated` events and
  the payment's new status set-based for the batch, and a `payment.verify` outbox row.

A success for a card tip or a card purchase (and any payment this function does not know) is
`deferred`: nothing is written for it, and the hub applies it through apply_event. Answers are
data: (ord, outcome, detail, deferred, events).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE FUNCTION hub_webhook_topups(
    p_provider text[], p_event_id text[], p_type text[], p_reference text[], p_amount bigint[],
    p_currency text[], p_provider_ref text[], p_payload text[]
) RETURNS TABLE (ord integer, outcome text, detail text, deferred boolean, events jsonb)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_provider), 0);
    v_outcome text[] := array_fill(NULL::text, ARRAY[n]);
    v_detail text[] := array_fill(NULL::text, ARRAY[n]);
    v_deferred boolean[] := array_fill(false, ARRAY[n]);
    v_delivery bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_payment bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_user text[] := array_fill(NULL::text, ARRAY[n]);
    v_wallet bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_clearing bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_live boolean[] := array_fill(false, ARRAY[n]);
    v_account bigint;
    v_event_ids regclass := pg_get_serial_sequence('events', 'id')::regclass;
    p record;
    r record;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- 1. Only top-ups are applied here: any other payment (or none) is the hub's to apply,
    -- and nothing is written for it. (A payment's purpose never changes.)
    FOR r IN
        SELECT i, (SELECT purpose FROM payments WHERE reference = p_reference[i]) AS purpose
        FROM hub_batch(n) AS i
    LOOP
        v_deferred[r.i] := r.purpose IS DISTINCT FROM 'topup';
    END LOOP;

    -- 2. The inbox, once per (provider, event id): a copy (earlier, or earlier in the batch)
    -- is a duplicate. A concurrent copy waits on the first one's row, then sees the conflict.
    FOR r IN
        WITH wanted AS (
            SELECT i, row_number() OVER (PARTITION BY p_provider[i], p_event_id[i] ORDER BY i)
                   AS copy
            FROM hub_batch(n) AS i WHERE NOT v_deferred[i]
        ), inserted AS (
            INSERT INTO webhook_events (provider, event_id, event_type, outcome, payload)
            SELECT p_provider[w.i], p_event_id[w.i], p_type[w.i], 'applied', p_payload[w.i]
            FROM wanted w WHERE w.copy = 1
            ORDER BY p_provider[w.i], p_event_id[w.i]  -- one order: batches never deadlock
            ON CONFLICT ON CONSTRAINT webhook_events_once DO NOTHING
            RETURNING id, provider, event_id
        )
        SELECT w.i, s.id FROM wanted w
        LEFT JOIN inserted s
               ON w.copy = 1 AND s.provider = p_provider[w.i] AND s.event_id = p_event_id[w.i]
    LOOP
        IF r.id IS NULL THEN
            v_outcome[r.i] := 'duplicate';
        ELSE
            v_delivery[r.i] := r.id;
            v_live[r.i] := true;
        END IF;
    END LOOP;

    -- 3. The payments, locked in id order; the checks of settlement._matching_payment and
    -- _payment_succeeded, in their order.
    FOR p IN
        SELECT id, reference, user_id, provider, amount, currency, status
        FROM payments
        WHERE reference IN (SELECT p_reference[i] FROM hub_batch(n) AS i WHERE v_live[i])
        ORDER BY id
        FOR UPDATE
    LOOP
        FOR r IN
            SELECT i FROM hub_batch(n) AS i WHERE v_live[i] AND p_reference[i] = p.reference
            ORDER BY i
        LOOP
            IF p.provider <> p_provider[r.i] THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := 'payment ' || p.reference || ' belongs to ' || p.provider;
            ELSIF p_amount[r.i] IS NOT NULL AND p_amount[r.i] <> p.amount THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := 'amount ' || p_amount[r.i] || ' does not match ' || p.amount;
            ELSIF p_currency[r.i] IS NOT NULL AND p_currency[r.i] <> p.currency THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := 'currency ' || p_currency[r.i] || ' does not match '
                    || p.currency;
            ELSIF p_amount[r.i] IS NULL OR p_currency[r.i] IS NULL THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := 'a success must state its amount and currency';
            ELSIF p.status = 'succeeded' THEN
                v_outcome[r.i] := 'ignored';
                v_detail[r.i] := 'the payment had already succeeded';
            ELSE
                -- What post_transfer would refuse (apply_event records it as a mismatch, and
                -- the payment stays pending for the next event).
                SELECT id INTO v_account FROM accounts
                WHERE owner_id = p.user_id AND kind = 'wallet' AND currency = p.currency
                  AND provider IS NULL;
                IF v_account IS NULL THEN
                    v_outcome[r.i] := 'mismatch';
                    v_detail[r.i] := 'UnknownAccount: no wallet account in ' || p.currency
                        || ' for ' || p.user_id;
                ELSIF EXISTS (SELECT 1 FROM transfers WHERE reference = 'payment:' || p.reference)
                THEN
                    v_outcome[r.i] := 'mismatch';
                    v_detail[r.i] := 'DuplicateTransfer: a transfer with reference payment:'
                        || p.reference || ' exists';
                ELSE
                    v_payment[r.i] := p.id;
                    v_user[r.i] := p.user_id;
                    v_wallet[r.i] := v_account;
                    v_outcome[r.i] := 'applied';
                    p.status := 'succeeded';  -- a second event for it in this batch is ignored
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    FOR r IN SELECT i FROM hub_batch(n) AS i WHERE v_live[i] LOOP
        IF v_payment[r.i] IS NULL THEN
            v_live[r.i] := false;
            IF v_outcome[r.i] IS NULL THEN
                v_outcome[r.i] := 'mismatch';
                v_detail[r.i] := CASE WHEN p_reference[r.i] IS NULL OR p_reference[r.i] = ''
                    THEN 'the event names no reference'
                    ELSE 'no payment with reference ' || p_reference[r.i] END;
            END IF;
        END IF;
    END LOOP;

    -- 4. The provider's clearing account, created on first use as ensure_system_account does.
    INSERT INTO accounts (owner_id, kind, currency, provider, may_go_negative)
    SELECT DISTINCT NULL::text, 'provider_clearing', p_currency[i], p_provider[i], true
    FROM hub_batch(n) AS i
    WHERE v_live[i] AND NOT EXISTS (
        SELECT 1 FROM accounts a WHERE a.owner_id IS NULL AND a.kind = 'provider_clearing'
           AND a.currency = p_currency[i] AND a.provider = p_provider[i])
    ON CONFLICT DO NOTHING;
    FOR r IN
        SELECT i, (SELECT id FROM accounts WHERE owner_id IS NULL AND kind = 'provider_clearing'
                       AND currency = p_currency[i] AND provider = p_provider[i]) AS clearing
        FROM hub_batch(n) AS i WHERE v_live[i]
    LOOP
        IF r.clearing IS NULL THEN  -- never (made above), but a one-legged credit must not be
            RAISE EXCEPTION 'no clearing account for % in %', p_provider[r.i], p_currency[r.i];
        END IF;
        v_clearing[r.i] := r.clearing;
    END LOOP;

    -- 5. One statement for the rest: lock the accounts (owners' first, then system accounts,
    -- by id: ledger.transfers' order), post every credit (transfers; entries with each
    -- account's running balance and version; each balance once), mark the payments succeeded,
    -- write the events numbered per user, queue each payment's verification, keep every
    -- refusal's outcome in the inbox, and answer every event.
    RETURN QUERY
    WITH live AS (
        SELECT i, v_payment[i] AS payment_id, v_user[i] AS user_id, p_amount[i] AS amount,
               p_currency[i] AS currency, v_wallet[i] AS wallet, v_clearing[i] AS clearing
        FROM hub_batch(n) AS i WHERE v_live[i]
    ), locked_accounts AS MATERIALIZED (
        SELECT a.id, a.balance, a.held, a.version, a.owner_id, a.kind
        FROM accounts a
        WHERE a.id IN (SELECT wallet FROM live UNION SELECT clearing FROM live)
        ORDER BY a.owner_id IS NULL, a.id
        FOR UPDATE
    ), t AS (
        INSERT INTO transfers (kind, currency, reference, metadata)
        SELECT 'topup', l.currency, 'payment:' || p_reference[l.i],
               jsonb_build_object('payment_id', l.payment_id, 'provider_ref', p_provider_ref[l.i])
        FROM live l, (SELECT count(*) FROM locked_accounts) AS after_the_locks
        ORDER BY l.i
        RETURNING id, reference
    ), posted AS (
        SELECT l.*, t.id AS transfer_id
        FROM live l JOIN t ON t.reference = 'payment:' || p_reference[l.i]
    ), legs AS (
        SELECT p.i, x.leg, x.account_id, x.amount, p.currency, p.transfer_id
        FROM posted p
        CROSS JOIN LATERAL (VALUES (1, p.clearing, -p.amount), (2, p.wallet, p.amount))
            AS x(leg, account_id, amount)
    ), running AS (
        SELECT g.*, a.owner_id, a.kind,
               a.balance + sum(g.amount) OVER w AS balance_after,
               a.balance + sum(g.amount) OVER w - a.held AS available,
               a.version + row_number() OVER w AS version_after
        FROM legs g JOIN locked_accounts a ON a.id = g.account_id
        WINDOW w AS (PARTITION BY g.account_id ORDER BY g.i, g.leg)
    ), written AS (
        INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
        SELECT transfer_id, account_id, amount, currency, balance_after
        FROM running ORDER BY i, leg
    ), applied AS (
        UPDATE accounts a SET balance = a.balance + d.total, version = a.version + d.n
        FROM (SELECT account_id, sum(amount) AS total, count(*) AS n
              FROM legs GROUP BY account_id) d
        WHERE a.id = d.account_id
    ), before AS (  -- the payment as the event shows it: as it was, but succeeded
        SELECT p.i, jsonb_build_object(
                   'id', y.id, 'reference', y.reference, 'provider', y.provider,
                   'amount', jsonb_build_object('amount', y.amount, 'currency', y.currency),
                   'purpose', y.purpose, 'details', y.details, 'status', 'succeeded',
                   'checkout_url', y.checkout_url,
                   'refunded', jsonb_build_object('amount', y.refunded_amount,
                                                  'currency', y.currency),
                   'failure_reason', y.failure_reason,
                   'created_at', hub_isoformat(y.created_at),
                   'updated_at', hub_isoformat(y.updated_at)) AS payment
        FROM posted p JOIN payments y ON y.id = p.payment_id
    ), settled AS (
        UPDATE payments y SET status = 'succeeded', updated_at = now(),
            provider_ref = COALESCE(p_provider_ref[p.i], y.provider_ref),
            transfer_id = p.transfer_id
        FROM posted p WHERE y.id = p.payment_id
    ), pending AS (
        SELECT e.*, nextval(v_event_ids) AS id
        FROM (
            SELECT p.i, x.idx, p.user_id, x.type, x.data
            FROM posted p
            JOIN before b ON b.i = p.i
            JOIN running w ON w.i = p.i AND w.leg = 2
            CROSS JOIN LATERAL (VALUES
                (1, 'payment.succeeded', b.payment),
                (2, 'balance.updated', jsonb_build_object(
                    'account_id', w.account_id, 'kind', w.kind, 'currency', w.currency,
                    'balance', w.balance_after, 'available', w.available,
                    'version', w.version_after))) AS x(idx, type, data)
            ORDER BY p.i, x.idx
        ) e
    ), counts AS (
        SELECT user_id, count(*) AS n FROM pending GROUP BY user_id
    ), locked_users AS (
        SELECT u.id, c.n FROM users u JOIN counts c ON c.user_id = u.id
        ORDER BY u.id FOR UPDATE OF u
    ), bumped AS (
        UPDATE users SET event_seq = users.event_seq + l.n
        FROM locked_users l WHERE users.id = l.id
        RETURNING users.id, users.event_seq AS top, l.n
    ), numbered AS (
        SELECT p.*,
               b.top - b.n + row_number() OVER (PARTITION BY p.user_id ORDER BY p.i, p.idx) AS seq
        FROM pending p JOIN bumped b ON b.id = p.user_id
    ), recorded AS (
        INSERT INTO events (id, user_id, seq, type, data)
        OVERRIDING SYSTEM VALUE
        SELECT id, user_id, seq, type, data FROM numbered ORDER BY id
        RETURNING id, user_id, seq, type, data, occurred_at
    ), events_of AS (
        SELECT m.i, jsonb_agg(jsonb_build_object(
                   'id', e.id, 'user_id', e.user_id, 'seq', e.seq, 'type', e.type,
                   'occurred_at', e.occurred_at, 'data', e.data) ORDER BY e.id) AS events
        FROM recorded e JOIN numbered m ON m.id = e.id GROUP BY m.i
    ), verify AS (
        INSERT INTO outbox (topic, ref)
        SELECT 'payment.verify', payment_id FROM posted ORDER BY i
    ), kept AS (
        UPDATE webhook_events k SET outcome = v_outcome[i], detail = v_detail[i]
        FROM hub_batch(n) AS i
        WHERE k.id = v_delivery[i] AND v_outcome[i] <> 'applied'
    )
    SELECT i, v_outcome[i], v_detail[i], v_deferred[i], ev.events
    FROM hub_batch(n) AS i LEFT JOIN events_of ev USING (i)
    ORDER BY i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_webhook_topups(
    text[], text[], text[], text[], bigint[], text[], text[], text[]);
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
