"""Pay-per-view purchases from the wallet in one call: hub_wallet_purchases posts a batch.

It is hub_wallet_tips's shape for ledger.content.purchase: claim every command's
Idempotency-Key, take each (buyer, item) advisory lock that purchase() takes, resolve the item
and the parties, lock the accounts once each in the fixed order, decide each command's refusal
in arrival order, then post the batch set-based (transfers, entries with running balances,
every account's balance once, the entitlements) and write the events. A refusal is data (the
saved error body), never an exception.

Two parts every later batch function needs are functions of their own here:
hub_claim_keys (step 1 of hub_wallet_tips, as it is) and hub_record_events
(ledger.events.record_events for a batch: users locked in id order, numbered per user, the
events of each command returned together). hub_wallet_tips keeps its own copies; 0010 and 0011
stay as they ran.

The response body is built byte for byte as hub.idempotency.dump_json writes
ledger.content.Purchase.as_json() (tests/ledger/test_wallet_purchases.py holds it to the
SQLAlchemy path).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Claim a batch's keys as ledger.idempotency.claim claims one: a transaction-scoped advisory lock
-- per (caller, key), then the row. The same key twice in one batch is the second in flight.
-- Per command: claimed (the command runs), or a refusal ('in_flight', 'key_reused'), or the
-- answer saved under the key (status and body: a replay).
CREATE FUNCTION hub_claim_keys(p_caller text[], p_key text[], p_hash text[])
RETURNS TABLE (ord integer, claimed boolean, refusal text, status integer, body text)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_caller), 0);
    r record;
BEGIN
    FOR r IN
        WITH c AS (
            SELECT i, p_caller[i] AS caller, p_key[i] AS key,
                   row_number() OVER (PARTITION BY p_caller[i], p_key[i] ORDER BY i) AS copy
            FROM hub_batch(n) AS i
        ), locked AS (
            SELECT c.i, c.caller, c.key, c.copy = 1 AND pg_try_advisory_xact_lock(
                       hashtextextended(
                           'idempotency:' || length(c.caller) || ':' || c.caller || ':' || c.key, 0
                       )) AS locked
            FROM c
        ), inserted AS (
            INSERT INTO idempotency_keys (caller_id, key, request_hash)
            SELECT l.caller, l.key, p_hash[l.i] FROM locked l WHERE l.locked
            ON CONFLICT DO NOTHING
            RETURNING caller_id, key
        )
        SELECT l.i, l.locked, s.key IS NOT NULL AS claimed,
               k.request_hash, k.status_code, k.response
        FROM locked l
        LEFT JOIN inserted s ON s.caller_id = l.caller AND s.key = l.key
        LEFT JOIN idempotency_keys k
               ON l.locked AND s.key IS NULL AND k.caller_id = l.caller AND k.key = l.key
        ORDER BY l.i
    LOOP
        ord := r.i;
        claimed := false;
        refusal := NULL;
        status := NULL;
        body := NULL;
        IF NOT r.locked THEN
            refusal := 'in_flight';
        ELSIF r.claimed THEN
            claimed := true;
        ELSIF r.request_hash IS NULL THEN
            refusal := 'in_flight';  -- committed since this statement's snapshot (as 0011)
        ELSIF r.request_hash IS DISTINCT FROM p_hash[r.i] THEN
            refusal := 'key_reused';
        ELSIF r.status_code IS NULL THEN
            refusal := 'in_flight';  -- claimed, its transaction still open
        ELSE
            status := r.status_code;
            body := r.response;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- Write a batch's events (user, type, data), numbered per user from the user's row, which stays
-- locked until the commit (users locked in id order: no deadlocks), ids in the order given, as
-- ledger.events.record_events does. Answers, per command (`p_ord`), its events as a JSON array
-- in id order. An unknown user is an error, as there.
CREATE FUNCTION hub_record_events(
    p_ord integer[], p_user text[], p_type text[], p_data jsonb[]
) RETURNS TABLE (ord integer, events jsonb)
LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_user), 0);
    v_event_ids regclass := pg_get_serial_sequence('events', 'id')::regclass;
    v_unknown text;
BEGIN
    SELECT string_agg(DISTINCT u, ', ') INTO v_unknown
    FROM unnest(p_user) AS u WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = u);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown user %', v_unknown;
    END IF;
    RETURN QUERY
    WITH pending AS (
        SELECT e.*, nextval(v_event_ids) AS id
        FROM (
            SELECT k, p_ord[k] AS ord, p_user[k] AS user_id, p_type[k] AS type, p_data[k] AS data
            FROM hub_batch(n) AS k ORDER BY k
        ) e
    ), counts AS (
        SELECT user_id, count(*) AS n FROM pending GROUP BY user_id
    ), locked AS (
        SELECT u.id, c.n FROM users u JOIN counts c ON c.user_id = u.id
        ORDER BY u.id FOR UPDATE OF u
    ), bumped AS (
        UPDATE users SET event_seq = users.event_seq + l.n
        FROM locked l WHERE users.id = l.id
        RETURNING users.id, users.event_seq AS top, l.n
    ), numbered AS (
        SELECT p.*, b.top - b.n + row_number() OVER (PARTITION BY p.user_id ORDER BY p.k) AS seq
        FROM pending p JOIN bumped b ON b.id = p.user_id
    ), recorded AS (
        INSERT INTO events (id, user_id, seq, type, data)
        OVERRIDING SYSTEM VALUE
        SELECT id, user_id, seq, type, data FROM numbered ORDER BY id
        RETURNING id, user_id, seq, type, data, occurred_at
    )
    SELECT x.ord, jsonb_agg(jsonb_build_object(
               'id', e.id, 'user_id', e.user_id, 'seq', e.seq, 'type', e.type,
               'occurred_at', e.occurred_at, 'data', e.data) ORDER BY e.id)
    FROM recorded e JOIN numbered x ON x.id = e.id
    GROUP BY x.ord;
END
$fn$;

CREATE FUNCTION hub_wallet_purchases(
    p_buyer text[], p_key text[], p_hash text[], p_content bigint[], p_fee_bps integer[],
    p_reference text[]
) RETURNS TABLE (
    ord integer, status integer, body text, replayed boolean, refusal text, events jsonb
) LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_buyer), 0);
    v_status integer[] := array_fill(0, ARRAY[n]);
    v_body text[] := array_fill(NULL::text, ARRAY[n]);
    v_replayed boolean[] := array_fill(false, ARRAY[n]);
    v_refusal text[] := array_fill(NULL::text, ARRAY[n]);
    v_claimed boolean[] := array_fill(false, ARRAY[n]);
    v_live boolean[] := array_fill(false, ARRAY[n]);  -- claimed, and no refusal yet
    v_creator text[] := array_fill(NULL::text, ARRAY[n]);
    v_title text[] := array_fill(NULL::text, ARRAY[n]);
    v_amount bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_currency text[] := array_fill(NULL::text, ARRAY[n]);
    v_wallet bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_earnings bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fee_account bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fee bigint[] := array_fill(0::bigint, ARRAY[n]);
    v_events jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    v_bought text[] := '{}';  -- (buyer, item) bought by this batch
    v_taken boolean[] := array_fill(false, ARRAY[n]);  -- its reference posted already
    a_id bigint[] := '{}';
    a_balance bigint[] := '{}';
    a_left bigint[];
    a_held bigint[] := '{}';
    a_negative boolean[] := '{}';
    a_version bigint[] := '{}';
    a_owner text[] := '{}';
    a_kind text[] := '{}';
    e_ord integer[] := '{}';
    e_user text[] := '{}';
    e_type text[] := '{}';
    e_data jsonb[] := '{}';
    j integer;
    r record;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- 1. The keys.
    FOR r IN SELECT * FROM hub_claim_keys(p_buyer, p_key, p_hash) LOOP
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

    -- 2. A buyer buys an item once: the advisory lock ledger.content.purchase takes for the
    -- pair (so a card purchase's webhook and this batch serialise), in one order for the batch.
    FOR r IN
        SELECT DISTINCT hashtextextended('purchase:' || p_buyer[i] || ':' || p_content[i], 0) AS h
        FROM hub_batch(n) AS i WHERE v_live[i]
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(r.h);
    END LOOP;

    -- 3. The item, the parties, and the refusals that need no account lock, in purchase()'s
    -- order: the item, the buyer's own item, access already had, then pay_creator's checks.
    FOR r IN
        SELECT i, c.id AS content_id, c.creator_id, c.title, c.price, c.currency,
               EXISTS (SELECT 1 FROM entitlements e
                       WHERE e.buyer_id = p_buyer[i] AND e.content_id = c.id) AS owned,
               (SELECT role FROM users WHERE id = c.creator_id) AS creator_role,
               (SELECT id FROM accounts WHERE owner_id = c.creator_id AND kind = 'earnings'
                   AND currency = c.currency AND provider IS NULL) AS earnings,
               (SELECT id FROM accounts WHERE owner_id = p_buyer[i] AND kind = 'wallet'
                   AND currency = c.currency AND provider IS NULL) AS wallet,
               (SELECT id FROM accounts WHERE owner_id IS NULL AND kind = 'platform_fee'
                   AND currency = c.currency AND provider IS NULL) AS fee_account
        FROM hub_batch(n) AS i
        LEFT JOIN content c ON c.id = p_content[i]
        WHERE v_live[i]
    LOOP
        IF r.content_id IS NULL THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body(
                'content_not_found', 'no content ' || p_content[r.i], 'content_id');
        ELSIF r.creator_id = p_buyer[r.i] THEN
            v_status[r.i] := 422;
            v_body[r.i] := hub_error_body(
                'invalid_request', 'you cannot buy your own content', 'content_id');
        ELSIF r.owned THEN
            v_status[r.i] := 409;
            v_body[r.i] := hub_error_body(
                'already_purchased', 'you already have access to this content', 'content_id');
        ELSIF r.price <= 0 THEN
            v_status[r.i] := 422;
            v_body[r.i] := hub_error_body(
                'invalid_request', 'amount must be a positive integer', 'amount');
        ELSIF r.creator_role IS DISTINCT FROM 'creator' THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body(
                'creator_not_found', 'no creator ' || r.creator_id, 'creator_id');
        ELSIF r.earnings IS NULL THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body('creator_not_found', 'creator ' || r.creator_id
                || ' has no earnings account in ' || r.currency, 'currency');
        ELSIF r.wallet IS NULL THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body('account_not_found',
                'no wallet account in ' || r.currency || ' for ' || p_buyer[r.i], NULL);
        ELSE
            v_creator[r.i] := r.creator_id;
            v_title[r.i] := r.title;
            v_amount[r.i] := r.price;
            v_currency[r.i] := r.currency;
            v_wallet[r.i] := r.wallet;
            v_earnings[r.i] := r.earnings;
            v_fee_account[r.i] := r.fee_account;
            -- ledger.money.platform_fee, in numeric: price times rate may pass bigint's range
            v_fee[r.i] := floor(r.price::numeric * p_fee_bps[r.i] / 10000)::bigint;
        END IF;
        IF v_status[r.i] <> 0 THEN
            v_live[r.i] := false;
        END IF;
    END LOOP;

    -- A currency's first fee makes its platform-fee account (ensure_system_account's way).
    IF EXISTS (SELECT 1 FROM hub_batch(n) AS i
               WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL) THEN
        INSERT INTO accounts (owner_id, kind, currency, provider, may_go_negative)
        SELECT DISTINCT NULL::text, 'platform_fee', v_currency[i], NULL::text, false
        FROM hub_batch(n) AS i
        WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL
        ON CONFLICT DO NOTHING;
        FOR r IN
            SELECT i, f.id FROM hub_batch(n) AS i
            JOIN accounts f ON f.owner_id IS NULL AND f.kind = 'platform_fee'
                 AND f.currency = v_currency[i] AND f.provider IS NULL
            WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL
        LOOP
            v_fee_account[r.i] := r.id;
        END LOOP;
    END IF;

    -- A reference taken already (the key's record expired, its transfer did not): refused in
    -- step 5, where post_transfer finds it, after the funds.
    FOR r IN
        SELECT i FROM hub_batch(n) AS i
        JOIN transfers t ON t.reference = p_reference[i]
        WHERE v_live[i]
    LOOP
        v_taken[r.i] := true;
    END LOOP;

    -- 4. Lock every account of the batch once, owners' first, then system accounts, by id.
    FOR r IN
        SELECT a.id, a.balance, a.held, a.may_go_negative, a.version, a.owner_id, a.kind
        FROM accounts a
        WHERE a.id IN (
            SELECT unnest(ARRAY[v_wallet[i], v_earnings[i], v_fee_account[i]])
            FROM hub_batch(n) AS i WHERE v_live[i]
        )
        ORDER BY a.owner_id IS NULL, a.id
        FOR UPDATE
    LOOP
        a_id := a_id || r.id;
        a_balance := a_balance || r.balance;
        a_held := a_held || r.held;
        a_negative := a_negative || r.may_go_negative;
        a_version := a_version || r.version;
        a_owner := a_owner || r.owner_id;
        a_kind := a_kind || r.kind;
    END LOOP;

    -- 5. In arrival order: an item this batch bought already for the buyer, then funds (each
    -- purchase sees what the batch's earlier ones left), then the reference.
    a_left := a_balance;
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        IF (p_buyer[i] || ':' || p_content[i]) = ANY (v_bought) THEN
            v_status[i] := 409;
            v_body[i] := hub_error_body(
                'already_purchased', 'you already have access to this content', 'content_id');
            v_live[i] := false;
            CONTINUE;
        END IF;
        j := array_position(a_id, v_wallet[i]);
        IF NOT (a_negative[j] OR a_left[j] - v_amount[i] >= a_held[j]) THEN
            v_status[i] := 402;
            v_body[i] := hub_error_body('insufficient_funds', 'the wallet account has too little '
                || v_currency[i] || ' for this transfer', 'amount');
            v_live[i] := false;
        ELSIF v_taken[i] THEN
            v_status[i] := 409;
            v_body[i] := hub_error_body('duplicate_transfer',
                'a transfer with reference ' || p_reference[i] || ' exists', NULL);
            v_live[i] := false;
        ELSE
            a_left[j] := a_left[j] - v_amount[i];
            v_bought := v_bought || (p_buyer[i] || ':' || p_content[i]);
        END IF;
    END LOOP;

    -- 6. One statement posts every live purchase: transfers; entries, each with its account's
    -- running balance and version; every account's balance once; the entitlements. It answers
    -- each with its body and its events' data.
    FOR r IN
        WITH cmd AS (
            SELECT i, p_buyer[i] AS buyer, p_content[i] AS content_id, v_creator[i] AS creator,
                   v_title[i] AS title, v_amount[i] AS amount, v_currency[i] AS currency,
                   v_fee[i] AS fee, v_wallet[i] AS wallet, v_earnings[i] AS earnings,
                   v_fee_account[i] AS fee_account
            FROM hub_batch(n) AS i WHERE v_live[i]
        ), t AS (
            INSERT INTO transfers (kind, currency, reference, metadata, fee_bps)
            SELECT 'purchase', c.currency, p_reference[c.i],
                   jsonb_build_object(
                       'content_id', c.content_id, 'buyer_id', c.buyer, 'payment_id', NULL),
                   p_fee_bps[c.i]
            FROM cmd c ORDER BY c.i
            RETURNING id, reference, created_at
        ), posted AS (
            SELECT c.*, t.id AS transfer_id, t.created_at
            FROM cmd c JOIN t ON t.reference = p_reference[c.i]
        ), legs AS (
            SELECT p.i, l.leg, l.account_id, l.amount, p.currency, p.transfer_id
            FROM posted p
            CROSS JOIN LATERAL (VALUES (1, p.wallet, -p.amount),
                                       (2, p.earnings, p.amount - p.fee),
                                       (3, p.fee_account, p.fee)) AS l(leg, account_id, amount)
            WHERE l.amount <> 0
        ), locked_accounts AS (  -- as step 4 locked and read them
            SELECT * FROM unnest(a_id, a_balance, a_held, a_version, a_owner, a_kind)
                AS a(id, balance, held, version, owner_id, kind)
        ), running AS (
            SELECT l.*, a.kind,
                   a.balance + sum(l.amount) OVER w AS balance_after,
                   a.balance + sum(l.amount) OVER w - a.held AS available,
                   a.version + row_number() OVER w AS version_after
            FROM legs l JOIN locked_accounts a ON a.id = l.account_id
            WINDOW w AS (PARTITION BY l.account_id ORDER BY l.i, l.leg)
        ), written AS (
            INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
            SELECT transfer_id, account_id, amount, currency, balance_after
            FROM running ORDER BY i, leg
        ), applied AS (
            UPDATE accounts a SET balance = a.balance + d.total, version = a.version + d.n
            FROM (SELECT account_id, sum(amount) AS total, count(*) AS n
                  FROM legs GROUP BY account_id) d
            WHERE a.id = d.account_id
        ), granted AS (
            INSERT INTO entitlements
                (buyer_id, content_id, transfer_id, payment_id, amount, fee, currency)
            SELECT buyer, content_id, transfer_id, NULL, amount, fee, currency FROM posted
        ), balances AS (
            SELECT r.i,
                   (array_agg(jsonb_build_object(
                       'account_id', r.account_id, 'kind', r.kind, 'currency', r.currency,
                       'balance', r.balance_after, 'available', r.available,
                       'version', r.version_after)) FILTER (WHERE r.leg = 1))[1] AS wallet_data,
                   (array_agg(jsonb_build_object(
                       'account_id', r.account_id, 'kind', r.kind, 'currency', r.currency,
                       'balance', r.balance_after, 'available', r.available,
                       'version', r.version_after)) FILTER (WHERE r.leg = 2))[1] AS earnings_data
            FROM running r GROUP BY r.i
        )
        SELECT p.i, p.buyer, p.creator, x.wallet_data, x.earnings_data,
               jsonb_build_object(
                   'content_id', p.content_id, 'title', p.title, 'amount', p.amount,
                   'currency', p.currency, 'transfer_id', p.transfer_id) AS unlocked,
               jsonb_build_object(
                   'content_id', p.content_id, 'title', p.title, 'buyer_id', p.buyer,
                   'amount', p.amount, 'fee', p.fee, 'net', p.amount - p.fee,
                   'currency', p.currency, 'transfer_id', p.transfer_id) AS sold,
               '{"id":' || p.transfer_id || ',"kind":"purchase","content_id":' || p.content_id
               || ',"buyer_id":' || to_json(p.buyer)::text
               || ',"creator_id":' || to_json(p.creator)::text
               || ',"amount":{"amount":' || p.amount || ',"currency":' || to_json(p.currency)::text
               || '},"fee":{"amount":' || p.fee || ',"currency":' || to_json(p.currency)::text
               || '},"net":{"amount":' || (p.amount - p.fee) || ',"currency":'
               || to_json(p.currency)::text
               || '},"created_at":"' || hub_isoformat(p.created_at) || '"}' AS body
        FROM posted p JOIN balances x ON x.i = p.i
        ORDER BY p.i
    LOOP
        v_status[r.i] := 201;
        v_body[r.i] := r.body;
        -- A purchase's events, in order: ppv.unlocked (buyer), ppv.sold (creator),
        -- balance.updated (the buyer's wallet), balance.updated (the creator's earnings).
        e_ord := e_ord || ARRAY[r.i, r.i, r.i, r.i];
        e_user := e_user || ARRAY[r.buyer, r.creator, r.buyer, r.creator];
        e_type := e_type || ARRAY['ppv.unlocked', 'ppv.sold', 'balance.updated', 'balance.updated'];
        e_data := e_data || ARRAY[r.unlocked, r.sold, r.wallet_data, r.earnings_data];
    END LOOP;
    IF EXISTS (SELECT 1 FROM hub_batch(n) AS i WHERE v_live[i] AND v_status[i] <> 201) THEN
        RAISE EXCEPTION 'hub_wallet_purchases: a purchase was not posted';
    END IF;

    FOR r IN SELECT * FROM hub_record_events(e_ord, e_user, e_type, e_data) LOOP
        v_events[r.ord] := r.events;
    END LOOP;

    -- Every claimed key keeps its answer, committed with the money (or the refusal).
    UPDATE idempotency_keys k
    SET status_code = v_status[i], response = v_body[i], completed_at = now()
    FROM hub_batch(n) AS i
    WHERE v_claimed[i] AND k.caller_id = p_buyer[i] AND k.key = p_key[i];

    RETURN QUERY
    SELECT i, nullif(v_status[i], 0), v_body[i], v_replayed[i], v_refusal[i], v_events[i]
    FROM hub_batch(n) AS i ORDER BY i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_wallet_purchases(text[], text[], text[], bigint[], integer[], text[]);
DROP FUNCTION hub_record_events(integer[], text[], text[], jsonb[]);
DROP FUNCTION hub_claim_keys(text[], text[], text[]);
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
