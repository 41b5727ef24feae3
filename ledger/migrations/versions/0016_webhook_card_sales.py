"""Card tips and card purchases by webhook in one call: hub_webhook_card_sales.

A payment success whose payment paid for a tip or a pay-per-view item is, in
ledger.settlement.apply_event, a top-up of the payer's wallet followed by the tip or the
purchase from that wallet, the second in a savepoint: when it cannot happen (the item was bought
meanwhile, the creator is gone) the money stays in the wallet and the inbox says why. This
function does the same for a batch of such events, in one call:

1. anything but a tip's or a purchase's payment is `deferred` (nothing written: the hub applies
   it elsewhere);
2. the inbox, once per (provider, event id), as hub_webhook_topups (0012) records it (here by
   hub_record_deliveries, a function of its own for the webhook functions after 0012);
3. the payments locked in id order and matched (provider, amount, currency, not yet
   succeeded, the wallet, the credit's reference free), as there;
4. the provider's clearing account, made on first use;
5. each purchase's (buyer, item) advisory lock, in one order, as ledger.content.purchase takes
   it; then what each sale needs and the refusals that need no account lock, in
   pay_creator's and purchase()'s order; a currency's first platform-fee account;
6. every account of the batch locked once: owners' first, then system accounts, by id — so
   unlike apply_event, which locks the creator's earnings after the clearing account and the
   users, a card sale here keeps the order every other posting keeps;
7. in arrival order, the credit (transfer, entries, the payment succeeded, payment.succeeded and
   balance.updated, a payment.verify outbox row) and then the sale (an item this batch already
   sold the buyer, the funds, the sale's reference; then the transfer, entries, the tip row —
   whose trigger adds the tip's outbox row — or the entitlement, and their events);
8. each account's balance and version once, the events numbered per user (hub_record_events),
   each delivery's outcome and detail kept in the inbox.

Answers are data, as hub_webhook_topups answers: (ord, outcome, detail, deferred, events).

One difference in rows, none in money: a currency's first platform-fee account is made in step
5, and stays when the sale is refused in step 7 (apply_event makes it in the savepoint that
rolls back); an empty system account, as hub_wallet_purchases may leave one too.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- A batch of verified deliveries into the inbox, once per (provider, event id), as
-- ledger.inbox.record_delivery records one: each row's delivery id, or NULL for a copy (earlier,
-- or earlier in the batch; a concurrent copy waits on the first one's row, then sees the
-- conflict). Rows are inserted in (provider, event id) order, so batches never deadlock on them.
-- Skipped commands (`p_skip`) are not recorded and not answered. Recorded 'applied'; the caller
-- sets another outcome when it has one.
CREATE FUNCTION hub_record_deliveries(
    p_provider text[], p_event_id text[], p_type text[], p_payload text[], p_skip boolean[]
) RETURNS TABLE (ord integer, delivery bigint)
LANGUAGE sql SET enable_seqscan = off AS $fn$
    WITH wanted AS (
        SELECT i, row_number() OVER (PARTITION BY p_provider[i], p_event_id[i] ORDER BY i) AS copy
        FROM hub_batch(coalesce(cardinality(p_provider), 0)) AS i
        WHERE NOT coalesce(p_skip[i], false)
    ), inserted AS (
        INSERT INTO webhook_events (provider, event_id, event_type, outcome, payload)
        SELECT p_provider[w.i], p_event_id[w.i], p_type[w.i], 'applied', p_payload[w.i]
        FROM wanted w WHERE w.copy = 1
        ORDER BY p_provider[w.i], p_event_id[w.i]
        ON CONFLICT ON CONSTRAINT webhook_events_once DO NOTHING
        RETURNING id, provider, event_id
    )
    SELECT w.i, s.id FROM wanted w
    LEFT JOIN inserted s
           ON w.copy = 1 AND s.provider = p_provider[w.i] AND s.event_id = p_event_id[w.i]
    ORDER BY w.i
$fn$;

CREATE FUNCTION hub_webhook_card_sales(
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
    v_live boolean[] := array_fill(false, ARRAY[n]);
    -- the payment and its credit
    v_payment bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_shown jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);  -- as payment.succeeded shows it
    v_purpose text[] := array_fill(NULL::text, ARRAY[n]);
    v_details jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    v_user text[] := array_fill(NULL::text, ARRAY[n]);
    v_wallet bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_clearing bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    -- the sale
    v_refused text[] := array_fill(NULL::text, ARRAY[n]);  -- why it cannot happen
    v_creator text[] := array_fill(NULL::text, ARRAY[n]);
    v_content bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_title text[] := array_fill(NULL::text, ARRAY[n]);
    v_cost bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_sale_currency text[] := array_fill(NULL::text, ARRAY[n]);
    v_sale_wallet bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_earnings bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fee_account bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fee_bps integer[] := array_fill(0, ARRAY[n]);
    v_fee bigint[] := array_fill(0::bigint, ARRAY[n]);
    v_message text[] := array_fill(NULL::text, ARRAY[n]);
    v_payer_name text[] := array_fill(NULL::text, ARRAY[n]);
    v_bought text[] := '{}';
    v_events jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    -- the batch's accounts, locked; balances and versions as the postings run
    a_id bigint[] := '{}';
    a_balance bigint[] := '{}';
    a_version bigint[] := '{}';
    a_first_version bigint[] := '{}';
    a_held bigint[] := '{}';
    a_negative boolean[] := '{}';
    a_kind text[] := '{}';
    a_owner text[] := '{}';
    -- a transfer's legs, and the events
    l_account bigint[];
    l_amount bigint[];
    l_data jsonb[];
    e_ord integer[] := '{}';
    e_user text[] := '{}';
    e_type text[] := '{}';
    e_data jsonb[] := '{}';
    v_transfer bigint;
    v_account bigint;
    v_sale_reference text;
    v_sale jsonb;
    j integer;
    k integer;
    c record;
    p record;
    r record;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- 1. Only tips' and purchases' payments are applied here. (A payment's purpose never
    -- changes.)
    FOR r IN
        SELECT i, (SELECT purpose FROM payments WHERE reference = p_reference[i]) AS purpose
        FROM hub_batch(n) AS i
    LOOP
        v_deferred[r.i] := r.purpose IS NULL OR r.purpose NOT IN ('tip', 'purchase');
    END LOOP;

    -- 2. The inbox, once per (provider, event id).
    FOR r IN SELECT * FROM hub_record_deliveries(p_provider, p_event_id, p_type, p_payload,
                                                  v_deferred) LOOP
        IF r.delivery IS NULL THEN
            v_outcome[r.ord] := 'duplicate';
        ELSE
            v_delivery[r.ord] := r.delivery;
            v_live[r.ord] := true;
        END IF;
    END LOOP;

    -- 3. The payments, locked in id order, and settlement's checks in their order.
    FOR p IN
        SELECT id, reference, user_id, provider, amount, currency, status, purpose, details,
               checkout_url, refunded_amount, failure_reason, created_at, updated_at
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
                    v_purpose[r.i] := p.purpose;
                    v_details[r.i] := p.details;
                    v_shown[r.i] := jsonb_build_object(
                        'id', p.id, 'reference', p.reference, 'provider', p.provider,
                        'amount', jsonb_build_object('amount', p.amount, 'currency', p.currency),
                        'purpose', p.purpose, 'details', p.details, 'status', 'succeeded',
                        'checkout_url', p.checkout_url,
                        'refunded', jsonb_build_object('amount', p.refunded_amount,
                                                       'currency', p.currency),
                        'failure_reason', p.failure_reason,
                        'created_at', hub_isoformat(p.created_at),
                        'updated_at', hub_isoformat(p.updated_at));
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
        IF r.clearing IS NULL THEN
            RAISE EXCEPTION 'no clearing account for % in %', p_provider[r.i], p_currency[r.i];
        END IF;
        v_clearing[r.i] := r.clearing;
    END LOOP;

    -- 5. The sales. Purchases of one item by one buyer serialise on purchase()'s advisory lock,
    -- taken here in one order for the batch, before any account lock.
    FOR r IN
        SELECT DISTINCT hashtextextended(
                   'purchase:' || v_user[i] || ':' || (v_details[i]->>'content_id'), 0) AS h
        FROM hub_batch(n) AS i WHERE v_live[i] AND v_purpose[i] = 'purchase'
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(r.h);
    END LOOP;
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        v_fee_bps[i] := coalesce((v_details[i]->>'fee_bps')::integer, 0);
        -- Details the hub never writes (apply_event would fail on them, and the provider retry
        -- for days): the sale is refused, the money stays in the wallet, the inbox says why.
        IF (v_purpose[i] = 'tip' AND v_details[i]->>'creator_id' IS NULL)
           OR (v_purpose[i] = 'purchase' AND v_details[i]->>'content_id' IS NULL) THEN
            v_refused[i] := 'the payment''s details name no '
                || CASE WHEN v_purpose[i] = 'tip' THEN 'creator' ELSE 'item' END;
            CONTINUE;
        ELSIF v_fee_bps[i] NOT BETWEEN 0 AND 10000 THEN
            v_refused[i] := 'the payment''s fee rate ' || v_fee_bps[i] || ' bps is out of range';
            CONTINUE;
        END IF;
        IF v_purpose[i] = 'tip' THEN
            v_creator[i] := v_details[i]->>'creator_id';
            v_message[i] := v_details[i]->>'message';
            v_cost[i] := p_amount[i];
            v_sale_currency[i] := p_currency[i];
        ELSE
            -- ensure_purchasable(get_content(...)): the item, one's own, access already had
            v_content[i] := (v_details[i]->>'content_id')::bigint;
            SELECT creator_id, title, price, currency INTO c FROM content WHERE id = v_content[i];
            IF NOT FOUND THEN
                v_refused[i] := 'no content ' || v_content[i];
                CONTINUE;
            ELSIF c.creator_id = v_user[i] THEN
                v_refused[i] := 'you cannot buy your own content';
                CONTINUE;
            ELSIF EXISTS (SELECT 1 FROM entitlements
                          WHERE buyer_id = v_user[i] AND content_id = v_content[i]) THEN
                v_refused[i] := 'you already have access to this content';
                CONTINUE;
            END IF;
            v_creator[i] := c.creator_id;
            v_title[i] := c.title;
            v_cost[i] := c.price;
            v_sale_currency[i] := c.currency;
        END IF;
        -- pay_creator's checks
        IF v_cost[i] <= 0 THEN
            v_refused[i] := 'amount must be a positive integer';
        ELSIF v_user[i] = v_creator[i] THEN
            v_refused[i] := 'you cannot pay yourself';
        ELSIF (SELECT role FROM users WHERE id = v_creator[i]) IS DISTINCT FROM 'creator' THEN
            v_refused[i] := 'no creator ' || v_creator[i];
        ELSE
            SELECT id INTO v_account FROM accounts
            WHERE owner_id = v_creator[i] AND kind = 'earnings'
              AND currency = v_sale_currency[i] AND provider IS NULL;
            v_earnings[i] := v_account;
            SELECT id INTO v_account FROM accounts
            WHERE owner_id = v_user[i] AND kind = 'wallet'
              AND currency = v_sale_currency[i] AND provider IS NULL;
            v_sale_wallet[i] := v_account;
            IF v_earnings[i] IS NULL THEN
                v_refused[i] := 'creator ' || v_creator[i] || ' has no earnings account in '
                    || v_sale_currency[i];
            ELSIF v_sale_wallet[i] IS NULL THEN
                v_refused[i] := 'no wallet account in ' || v_sale_currency[i] || ' for '
                    || v_user[i];
            ELSE
                -- ledger.money.platform_fee, in numeric (may pass bigint's range)
                v_fee[i] := floor(v_cost[i]::numeric * v_fee_bps[i] / 10000)::bigint;
                IF v_cost[i] = v_fee[i] THEN  -- post_transfer refuses an empty earnings leg
                    v_refused[i] := 'a transfer needs legs with non-zero amounts';
                END IF;
                v_payer_name[i] := (SELECT display_name FROM users WHERE id = v_user[i]);
                SELECT id INTO v_account FROM accounts
                WHERE owner_id IS NULL AND kind = 'platform_fee'
                  AND currency = v_sale_currency[i] AND provider IS NULL;
                IF v_fee[i] > 0 AND v_account IS NULL THEN
                    INSERT INTO accounts (owner_id, kind, currency, provider, may_go_negative)
                    VALUES (NULL, 'platform_fee', v_sale_currency[i], NULL, false)
                    ON CONFLICT DO NOTHING;
                    SELECT id INTO v_account FROM accounts
                    WHERE owner_id IS NULL AND kind = 'platform_fee'
                      AND currency = v_sale_currency[i] AND provider IS NULL;
                END IF;
                v_fee_account[i] := v_account;
            END IF;
        END IF;
    END LOOP;

    -- 6. Every account of the batch, locked once: owners' first, then system accounts, by id.
    FOR r IN
        SELECT a.id, a.balance, a.held, a.may_go_negative, a.version, a.owner_id, a.kind
        FROM accounts a
        WHERE a.id IN (
            SELECT unnest(ARRAY[v_wallet[i], v_clearing[i], v_sale_wallet[i], v_earnings[i],
                                v_fee_account[i]])
            FROM hub_batch(n) AS i WHERE v_live[i]
        )
        ORDER BY a.owner_id IS NULL, a.id
        FOR UPDATE
    LOOP
        a_id := a_id || r.id;
        a_balance := a_balance || r.balance;
        a_version := a_version || r.version;
        a_first_version := a_first_version || r.version;
        a_held := a_held || r.held;
        a_negative := a_negative || r.may_go_negative;
        a_kind := a_kind || r.kind;
        a_owner := a_owner || r.owner_id;
    END LOOP;

    -- 7. In arrival order: the credit, then the sale.
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        INSERT INTO transfers (kind, currency, reference, metadata)
        VALUES ('topup', p_currency[i], 'payment:' || p_reference[i],
                jsonb_build_object('payment_id', v_payment[i], 'provider_ref', p_provider_ref[i]))
        RETURNING id INTO v_transfer;
        l_account := ARRAY[v_clearing[i], v_wallet[i]];
        l_amount := ARRAY[-p_amount[i], p_amount[i]];
        l_data := '{}';
        FOR k IN 1..2 LOOP
            j := array_position(a_id, l_account[k]);
            a_balance[j] := a_balance[j] + l_amount[k];
            a_version[j] := a_version[j] + 1;
            INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
            VALUES (v_transfer, l_account[k], l_amount[k], p_currency[i], a_balance[j]);
            l_data := array_append(l_data, jsonb_build_object(
                'account_id', a_id[j], 'kind', a_kind[j], 'currency', p_currency[i],
                'balance', a_balance[j], 'available', a_balance[j] - a_held[j],
                'version', a_version[j]));
        END LOOP;
        UPDATE payments y SET status = 'succeeded', updated_at = now(),
            provider_ref = COALESCE(p_provider_ref[i], y.provider_ref), transfer_id = v_transfer
        WHERE y.id = v_payment[i];
        INSERT INTO outbox (topic, ref) VALUES ('payment.verify', v_payment[i]);
        e_ord := e_ord || ARRAY[i, i];
        e_user := e_user || ARRAY[v_user[i], v_user[i]];
        e_type := e_type || ARRAY['payment.succeeded', 'balance.updated'];
        e_data := e_data || ARRAY[v_shown[i], l_data[2]];

        -- The sale, from the wallet just credited (apply_event's savepoint: refused, it writes
        -- nothing and the money stays in the wallet).
        v_sale_reference := v_purpose[i] || ':payment:' || p_reference[i];
        IF v_refused[i] IS NULL AND v_purpose[i] = 'purchase'
           AND (v_user[i] || ':' || v_content[i]) = ANY (v_bought) THEN
            v_refused[i] := 'you already have access to this content';
        END IF;
        IF v_refused[i] IS NULL THEN
            j := array_position(a_id, v_sale_wallet[i]);
            IF NOT (a_negative[j] OR a_balance[j] - v_cost[i] >= a_held[j]) THEN
                v_refused[i] := 'the wallet account has too little ' || v_sale_currency[i]
                    || ' for this transfer';
            ELSIF EXISTS (SELECT 1 FROM transfers WHERE reference = v_sale_reference) THEN
                v_refused[i] := 'a transfer with reference ' || v_sale_reference || ' exists';
            END IF;
        END IF;
        IF v_refused[i] IS NOT NULL THEN
            v_detail[i] := v_purpose[i] || ' not completed (' || v_refused[i]
                || '); credited to the wallet';
            CONTINUE;
        END IF;
        INSERT INTO transfers (kind, currency, reference, metadata, fee_bps)
        VALUES (v_purpose[i], v_sale_currency[i], v_sale_reference,
                CASE WHEN v_purpose[i] = 'tip'
                     THEN jsonb_build_object('fan_id', v_user[i], 'creator_id', v_creator[i],
                                             'payment_id', v_payment[i])
                     ELSE jsonb_build_object('content_id', v_content[i], 'buyer_id', v_user[i],
                                             'payment_id', v_payment[i]) END,
                v_fee_bps[i])
        RETURNING id INTO v_transfer;
        l_account := ARRAY[v_sale_wallet[i], v_earnings[i], v_fee_account[i]];
        l_amount := ARRAY[-v_cost[i], v_cost[i] - v_fee[i], v_fee[i]];
        l_data := '{}';
        FOR k IN 1..3 LOOP
            CONTINUE WHEN l_amount[k] = 0;
            j := array_position(a_id, l_account[k]);
            a_balance[j] := a_balance[j] + l_amount[k];
            a_version[j] := a_version[j] + 1;
            INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
            VALUES (v_transfer, l_account[k], l_amount[k], v_sale_currency[i], a_balance[j]);
            l_data := array_append(l_data, jsonb_build_object(
                'account_id', a_id[j], 'kind', a_kind[j], 'currency', v_sale_currency[i],
                'balance', a_balance[j], 'available', a_balance[j] - a_held[j],
                'version', a_version[j]));
        END LOOP;
        IF v_purpose[i] = 'tip' THEN
            INSERT INTO tips (transfer_id, fan_id, creator_id, amount, fee, currency, message,
                              payment_id)
            VALUES (v_transfer, v_user[i], v_creator[i], v_cost[i], v_fee[i],
                    v_sale_currency[i], v_message[i], v_payment[i]);
            v_sale := jsonb_build_object(
                'tip_id', v_transfer, 'fan_id', v_user[i], 'fan_name', v_payer_name[i],
                'creator_id', v_creator[i], 'amount', v_cost[i], 'fee', v_fee[i],
                'net', v_cost[i] - v_fee[i], 'currency', v_sale_currency[i],
                'message', v_message[i], 'payment_id', v_payment[i]);
            e_ord := e_ord || ARRAY[i, i, i, i];
            e_user := e_user || ARRAY[v_creator[i], v_user[i], v_user[i], v_creator[i]];
            e_type := e_type
                || ARRAY['tip.received', 'tip.sent', 'balance.updated', 'balance.updated'];
            e_data := e_data || ARRAY[v_sale, v_sale, l_data[1], l_data[2]];
        ELSE
            INSERT INTO entitlements
                (buyer_id, content_id, transfer_id, payment_id, amount, fee, currency)
            VALUES (v_user[i], v_content[i], v_transfer, v_payment[i], v_cost[i], v_fee[i],
                    v_sale_currency[i]);
            v_bought := v_bought || (v_user[i] || ':' || v_content[i]);
            e_ord := e_ord || ARRAY[i, i, i, i];
            e_user := e_user || ARRAY[v_user[i], v_creator[i], v_user[i], v_creator[i]];
            e_type := e_type
                || ARRAY['ppv.unlocked', 'ppv.sold', 'balance.updated', 'balance.updated'];
            e_data := e_data || ARRAY[
                jsonb_build_object(
                    'content_id', v_content[i], 'title', v_title[i], 'amount', v_cost[i],
                    'currency', v_sale_currency[i], 'transfer_id', v_transfer),
                jsonb_build_object(
                    'content_id', v_content[i], 'title', v_title[i], 'buyer_id', v_user[i],
                    'amount', v_cost[i], 'fee', v_fee[i], 'net', v_cost[i] - v_fee[i],
                    'currency', v_sale_currency[i], 'transfer_id', v_transfer),
                l_data[1], l_data[2]];
        END IF;
    END LOOP;

    -- 8. Each account's balance once; the events; the inbox's outcomes.
    UPDATE accounts a SET balance = x.balance, version = x.version
    FROM unnest(a_id, a_balance, a_version, a_first_version) AS x(id, balance, version, first)
    WHERE a.id = x.id AND x.version <> x.first;

    FOR r IN SELECT * FROM hub_record_events(e_ord, e_user, e_type, e_data) LOOP
        v_events[r.ord] := r.events;
    END LOOP;

    UPDATE webhook_events k SET outcome = v_outcome[i], detail = v_detail[i]
    FROM hub_batch(n) AS i
    WHERE k.id = v_delivery[i] AND (v_outcome[i] <> 'applied' OR v_detail[i] IS NOT NULL);

    RETURN QUERY
    SELECT i, v_outcome[i], v_detail[i], v_deferred[i], v_events[i]
    FROM hub_batch(n) AS i ORDER BY i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_webhook_card_sales(
    text[], text[], text[], text[], bigint[], text[], text[], text[]);
DROP FUNCTION hub_record_deliveries(text[], text[], text[], text[], boolean[]);
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
