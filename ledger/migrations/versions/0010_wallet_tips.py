"""Wallet tips in one call: hub_wallet_tips posts a batch of tips set-based.

One call claims every command's Idempotency-Key, resolves the parties, locks the accounts once
each in the fixed order (owners' first, then system accounts, each by id), decides each
command's refusal in arrival order (a fan's wallet is checked against what their earlier tips
of the batch left), and then writes, one statement each for the whole batch: the transfers,
their entries with each account's running balance and version, every account's balance once,
the tip rows, the event rows numbered per user, and the saved responses. A refusal is data (the
saved error body), never an exception: the others of the batch still post.

The response bodies are built here, byte for byte as hub.idempotency.dump_json writes
ledger.tips.Tip.as_json() and hub.errors.error_body() (tests/ledger/test_wallet_tips.py holds
them to it), so that the saved response commits with the money and a replay is identical.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from ledger.migrations.helpers import execute_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- {"error":{"type":…,"message":…,"param":…}} as hub.errors.error_body, compact.
CREATE FUNCTION hub_error_body(p_type text, p_message text, p_param text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"error":{"type":' || to_json(p_type)::text || ',"message":' || to_json(p_message)::text
        || ',"param":' || coalesce(to_json(p_param)::text, 'null') || '}}'
$$;

-- A time as Python's datetime.isoformat() writes it in UTC (microseconds only when not zero).
CREATE FUNCTION hub_isoformat(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN mod(date_part('microseconds', p_at)::bigint, 1000000) = 0 THEN ''
                ELSE to_char(p_at AT TIME ZONE 'UTC', '.US') END
        || '+00:00'
$$;

-- 1..n, the commands of a batch. The planner takes a function's rows as declared: a batch is a
-- few commands, so every join to a large table (accounts, users, idempotency keys) is planned
-- as lookups by key, never as a scan of the table.
CREATE FUNCTION hub_batch(p_n integer) RETURNS SETOF integer
LANGUAGE plpgsql IMMUTABLE STRICT ROWS 16 AS $$
BEGIN
    RETURN QUERY SELECT generate_series(1, p_n);
END
$$;

CREATE FUNCTION hub_wallet_tips(
    p_fan text[], p_key text[], p_hash text[], p_creator text[], p_amount bigint[],
    p_currency text[], p_fee_bps integer[], p_message text[], p_reference text[]
) RETURNS TABLE (
    ord integer, status integer, body text, replayed boolean, refusal text, events jsonb
) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    n integer := coalesce(cardinality(p_fan), 0);
    v_status integer[] := array_fill(0, ARRAY[n]);
    v_body text[] := array_fill(NULL::text, ARRAY[n]);
    v_replayed boolean[] := array_fill(false, ARRAY[n]);
    v_refusal text[] := array_fill(NULL::text, ARRAY[n]);
    v_claimed boolean[] := array_fill(false, ARRAY[n]);
    v_live boolean[] := array_fill(false, ARRAY[n]);  -- claimed, and no refusal yet
    v_wallet bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_earnings bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fee_account bigint[] := array_fill(NULL::bigint, ARRAY[n]);
    v_fee bigint[] := array_fill(0::bigint, ARRAY[n]);
    v_fan_name text[] := array_fill(NULL::text, ARRAY[n]);
    a_id bigint[] := '{}';
    a_balance bigint[] := '{}';
    a_left bigint[];  -- what the funds check leaves, command by command
    a_held bigint[] := '{}';
    a_negative boolean[] := '{}';
    a_version bigint[] := '{}';
    a_owner text[] := '{}';
    a_kind text[] := '{}';
    j integer;
    v_event_ids regclass := pg_get_serial_sequence('events', 'id')::regclass;
    r record;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- 1. Claim the keys: a transaction-scoped advisory lock per (caller, key), the scope as
    -- ledger.idempotency.claim takes it, then the row. The same key twice in one batch is the
    -- second request in flight.
    FOR r IN
        WITH c AS (
            SELECT i, p_fan[i] AS caller, p_key[i] AS key,
                   row_number() OVER (PARTITION BY p_fan[i], p_key[i] ORDER BY i) AS copy
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
    LOOP
        IF NOT r.locked THEN
            v_refusal[r.i] := 'in_flight';
        ELSIF r.claimed THEN
            v_claimed[r.i] := true;
            v_live[r.i] := true;
        ELSIF r.request_hash IS DISTINCT FROM p_hash[r.i] THEN
            v_refusal[r.i] := 'key_reused';
        ELSIF r.status_code IS NULL THEN
            v_refusal[r.i] := 'in_flight';
        ELSE
            v_status[r.i] := r.status_code;
            v_body[r.i] := r.response;
            v_replayed[r.i] := true;
        END IF;
    END LOOP;

    -- 2. The parties, and the refusals that need no lock (pay_creator's order of checks).
    FOR r IN
        SELECT i,
               (SELECT role FROM users WHERE id = p_creator[i]) AS creator_role,
               (SELECT display_name FROM users WHERE id = p_fan[i]) AS fan_name,
               (SELECT id FROM accounts WHERE owner_id = p_creator[i] AND kind = 'earnings'
                   AND currency = p_currency[i] AND provider IS NULL) AS earnings,
               (SELECT id FROM accounts WHERE owner_id = p_fan[i] AND kind = 'wallet'
                   AND currency = p_currency[i] AND provider IS NULL) AS wallet,
               (SELECT id FROM accounts WHERE owner_id IS NULL AND kind = 'platform_fee'
                   AND currency = p_currency[i] AND provider IS NULL) AS fee_account
        FROM hub_batch(n) AS i
        WHERE v_live[i]
    LOOP
        IF p_amount[r.i] <= 0 THEN
            v_status[r.i] := 422;
            v_body[r.i] := hub_error_body(
                'invalid_request', 'amount must be a positive integer', 'amount');
        ELSIF p_fan[r.i] = p_creator[r.i] THEN
            v_status[r.i] := 422;
            v_body[r.i] := hub_error_body(
                'invalid_request', 'you cannot pay yourself', 'creator_id');
        ELSIF r.creator_role IS DISTINCT FROM 'creator' THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body(
                'creator_not_found', 'no creator ' || p_creator[r.i], 'creator_id');
        ELSIF r.earnings IS NULL THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body('creator_not_found', 'creator ' || p_creator[r.i]
                || ' has no earnings account in ' || p_currency[r.i], 'currency');
        ELSIF r.wallet IS NULL THEN
            v_status[r.i] := 404;
            v_body[r.i] := hub_error_body('account_not_found',
                'no wallet account in ' || p_currency[r.i] || ' for ' || p_fan[r.i], NULL);
        ELSE
            v_wallet[r.i] := r.wallet;
            v_earnings[r.i] := r.earnings;
            v_fan_name[r.i] := r.fan_name;
            v_fee_account[r.i] := r.fee_account;
            v_fee[r.i] := p_amount[r.i] * p_fee_bps[r.i] / 10000;  -- ledger.money.platform_fee
        END IF;
        IF v_status[r.i] <> 0 THEN
            v_live[r.i] := false;
        END IF;
    END LOOP;

    -- A currency's first fee makes its platform-fee account (ensure_system_account's way).
    IF EXISTS (SELECT 1 FROM hub_batch(n) AS i
               WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL) THEN
        INSERT INTO accounts (owner_id, kind, currency, provider, may_go_negative)
        SELECT DISTINCT NULL::text, 'platform_fee', p_currency[i], NULL::text, false
        FROM hub_batch(n) AS i
        WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL
        ON CONFLICT DO NOTHING;
        FOR r IN
            SELECT i, f.id FROM hub_batch(n) AS i
            JOIN accounts f ON f.owner_id IS NULL AND f.kind = 'platform_fee'
                 AND f.currency = p_currency[i] AND f.provider IS NULL
            WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL
        LOOP
            v_fee_account[r.i] := r.id;
        END LOOP;
    END IF;

    -- A reference taken already (the key's record expired, its transfer did not).
    FOR r IN
        SELECT i FROM hub_batch(n) AS i
        JOIN transfers t ON t.reference = p_reference[i]
        WHERE v_live[i]
    LOOP
        v_status[r.i] := 409;
        v_body[r.i] := hub_error_body('duplicate_transfer',
            'a transfer with reference ' || p_reference[r.i] || ' exists', NULL);
        v_live[r.i] := false;
    END LOOP;

    -- 3. Lock every account of the batch once, owners' first, then system accounts, by id:
    -- the order of ledger.transfers, so batches and single postings never deadlock.
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

    -- 4. Funds, in arrival order: each tip sees what the batch's earlier tips left.
    a_left := a_balance;
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        j := array_position(a_id, v_wallet[i]);
        IF a_negative[j] OR a_left[j] - p_amount[i] >= a_held[j] THEN
            a_left[j] := a_left[j] - p_amount[i];
        ELSE
            v_status[i] := 402;
            v_body[i] := hub_error_body('insufficient_funds', 'the wallet account has too little '
                || p_currency[i] || ' for this transfer', 'amount');
            v_live[i] := false;
        END IF;
    END LOOP;

    -- 5. One statement for the rest: post every live tip (transfers; entries, each with its
    -- account's running balance and version; every account's balance once; the tip rows),
    -- write their events numbered per user (the users' rows locked in id order, after the
    -- accounts, as ledger.events.record_events does everywhere), keep every claimed key's
    -- answer, and answer every command.
    RETURN QUERY
    WITH cmd AS (
        SELECT i, p_fan[i] AS fan, p_creator[i] AS creator, p_amount[i] AS amount,
               p_currency[i] AS currency, v_fee[i] AS fee, p_message[i] AS message,
               v_wallet[i] AS wallet, v_earnings[i] AS earnings, v_fee_account[i] AS fee_account,
               v_fan_name[i] AS fan_name
        FROM hub_batch(n) AS i WHERE v_live[i]
    ), t AS (
        INSERT INTO transfers (kind, currency, reference, metadata, fee_bps)
        SELECT 'tip', c.currency, p_reference[c.i],
               jsonb_build_object('fan_id', c.fan, 'creator_id', c.creator, 'payment_id', NULL),
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
    ), locked_accounts AS (  -- as step 3 locked and read them
        SELECT * FROM unnest(a_id, a_balance, a_held, a_version, a_owner, a_kind)
            AS a(id, balance, held, version, owner_id, kind)
    ), running AS (
        SELECT l.*, a.owner_id, a.kind,
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
    ), tipped AS (
        INSERT INTO tips (transfer_id, fan_id, creator_id, amount, fee, currency, message)
        SELECT transfer_id, fan, creator, amount, fee, currency, message FROM posted
    ), per_tip AS (
        SELECT r.i,
               string_agg('{"account_id":' || r.account_id || ',"owner_id":'
                          || coalesce(to_json(r.owner_id)::text, 'null') || ',"kind":'
                          || to_json(r.kind)::text || ',"amount":' || r.amount || '}',
                          ',' ORDER BY r.account_id) AS entries,
               (array_agg(jsonb_build_object(
                   'account_id', r.account_id, 'kind', r.kind, 'currency', r.currency,
                   'balance', r.balance_after, 'available', r.available,
                   'version', r.version_after)) FILTER (WHERE r.leg = 1))[1] AS wallet_data,
               (array_agg(jsonb_build_object(
                   'account_id', r.account_id, 'kind', r.kind, 'currency', r.currency,
                   'balance', r.balance_after, 'available', r.available,
                   'version', r.version_after)) FILTER (WHERE r.leg = 2))[1] AS earnings_data
        FROM running r GROUP BY r.i
    ), answered AS (
        SELECT p.*, x.wallet_data, x.earnings_data,
               jsonb_build_object(
                   'tip_id', p.transfer_id, 'fan_id', p.fan, 'fan_name', p.fan_name,
                   'creator_id', p.creator, 'amount', p.amount, 'fee', p.fee,
                   'net', p.amount - p.fee, 'currency', p.currency, 'message', p.message,
                   'payment_id', NULL) AS tip,
               '{"id":' || p.transfer_id || ',"kind":"tip","fan_id":' || to_json(p.fan)::text
               || ',"creator_id":' || to_json(p.creator)::text
               || ',"amount":{"amount":' || p.amount || ',"currency":' || to_json(p.currency)::text
               || '},"fee":{"amount":' || p.fee || ',"currency":' || to_json(p.currency)::text
               || '},"net":{"amount":' || (p.amount - p.fee) || ',"currency":'
               || to_json(p.currency)::text
               || '},"message":' || coalesce(to_json(p.message)::text, 'null')
               || ',"created_at":"' || hub_isoformat(p.created_at)
               || '","entries":[' || x.entries || ']}' AS body
        FROM posted p JOIN per_tip x ON x.i = p.i
    ), pending AS (
        -- A tip's events, in order: tip.received (creator), tip.sent (fan), balance.updated
        -- (the fan's wallet), balance.updated (the creator's earnings); each with its id, so
        -- that the answer knows which events are its own.
        SELECT e.*, nextval(v_event_ids) AS id
        FROM (
            SELECT a.i, x.idx, x.user_id, x.type, x.data
            FROM answered a
            CROSS JOIN LATERAL (VALUES (1, a.creator, 'tip.received', a.tip),
                                       (2, a.fan, 'tip.sent', a.tip),
                                       (3, a.fan, 'balance.updated', a.wallet_data),
                                       (4, a.creator, 'balance.updated', a.earnings_data))
                 AS x(idx, user_id, type, data)
            ORDER BY a.i, x.idx
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
        SELECT p.*,
               b.top - b.n + row_number() OVER (PARTITION BY p.user_id ORDER BY p.i, p.idx) AS seq
        FROM pending p JOIN bumped b ON b.id = p.user_id
    ), recorded AS (
        INSERT INTO events (id, user_id, seq, type, data)
        OVERRIDING SYSTEM VALUE
        SELECT id, user_id, seq, type, data FROM numbered ORDER BY id
        RETURNING id, user_id, seq, type, data, occurred_at
    ), events_of AS (
        SELECT n.i, jsonb_agg(jsonb_build_object(
                   'id', e.id, 'user_id', e.user_id, 'seq', e.seq, 'type', e.type,
                   'occurred_at', e.occurred_at, 'data', e.data) ORDER BY e.id) AS events
        FROM recorded e JOIN numbered n ON n.id = e.id GROUP BY n.i
    ), answers AS (
        SELECT i,
               coalesce(a.status, nullif(v_status[i], 0)) AS status,
               coalesce(a.body, v_body[i]) AS body
        FROM hub_batch(n) AS i
        LEFT JOIN (SELECT answered.i, 201 AS status, answered.body FROM answered) a USING (i)
    ), kept AS (
        -- Every claimed key keeps its answer, committed with the money (or the refusal).
        UPDATE idempotency_keys k
        SET status_code = w.status, response = w.body, completed_at = now()
        FROM answers w
        WHERE v_claimed[w.i] AND k.caller_id = p_fan[w.i] AND k.key = p_key[w.i]
    )
    SELECT w.i, w.status, w.body, v_replayed[w.i], v_refusal[w.i], ev.events
    FROM answers w LEFT JOIN events_of ev ON ev.i = w.i
    ORDER BY w.i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_wallet_tips(
    text[], text[], text[], text[], bigint[], text[], integer[], text[], text[]);
DROP FUNCTION hub_batch(integer);
DROP FUNCTION hub_isoformat(timestamptz);
DROP FUNCTION hub_error_body(text, text, text);
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
