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
    v_events jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
    a_id bigint[] := '{}';
    a_balance bigint[] := '{}';
    a_held bigint[] := '{}';
    a_negative boolean[] := '{}';
    j integer;
    v_cur text;  -- a command's currency, as JSON
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
            FROM generate_subscripts(p_fan, 1) AS i
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
        SELECT i, cu.role AS creator_role, e.id AS earnings, w.id AS wallet,
               fu.display_name AS fan_name, f.id AS fee_account
        FROM generate_subscripts(p_fan, 1) AS i
        LEFT JOIN users cu ON cu.id = p_creator[i]
        LEFT JOIN users fu ON fu.id = p_fan[i]
        LEFT JOIN accounts e ON e.owner_id = p_creator[i] AND e.kind = 'earnings'
             AND e.currency = p_currency[i] AND e.provider IS NULL
        LEFT JOIN accounts w ON w.owner_id = p_fan[i] AND w.kind = 'wallet'
             AND w.currency = p_currency[i] AND w.provider IS NULL
        LEFT JOIN accounts f ON f.owner_id IS NULL AND f.kind = 'platform_fee'
             AND f.currency = p_currency[i] AND f.provider IS NULL
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
    IF EXISTS (SELECT 1 FROM generate_subscripts(p_fan, 1) AS i
               WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL) THEN
        INSERT INTO accounts (owner_id, kind, currency, provider, may_go_negative)
        SELECT DISTINCT NULL::text, 'platform_fee', p_currency[i], NULL::text, false
        FROM generate_subscripts(p_fan, 1) AS i
        WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL
        ON CONFLICT DO NOTHING;
        FOR r IN
            SELECT i, f.id FROM generate_subscripts(p_fan, 1) AS i
            JOIN accounts f ON f.owner_id IS NULL AND f.kind = 'platform_fee'
                 AND f.currency = p_currency[i] AND f.provider IS NULL
            WHERE v_live[i] AND v_fee[i] > 0 AND v_fee_account[i] IS NULL
        LOOP
            v_fee_account[r.i] := r.id;
        END LOOP;
    END IF;

    -- A reference taken already (the key's record expired, its transfer did not).
    FOR r IN
        SELECT i FROM generate_subscripts(p_fan, 1) AS i
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
        SELECT a.id, a.balance, a.held, a.may_go_negative FROM accounts a
        WHERE a.id IN (
            SELECT unnest(ARRAY[v_wallet[i], v_earnings[i], v_fee_account[i]])
            FROM generate_subscripts(p_fan, 1) AS i WHERE v_live[i]
        )
        ORDER BY a.owner_id IS NULL, a.id
        FOR UPDATE
    LOOP
        a_id := a_id || r.id;
        a_balance := a_balance || r.balance;
        a_held := a_held || r.held;
        a_negative := a_negative || r.may_go_negative;
    END LOOP;

    -- 4. Funds, in arrival order: each tip sees what the batch's earlier tips left.
    FOR i IN 1..n LOOP
        CONTINUE WHEN NOT v_live[i];
        j := array_position(a_id, v_wallet[i]);
        IF a_negative[j] OR a_balance[j] - p_amount[i] >= a_held[j] THEN
            a_balance[j] := a_balance[j] - p_amount[i];
        ELSE
            v_status[i] := 402;
            v_body[i] := hub_error_body('insufficient_funds', 'the wallet account has too little '
                || p_currency[i] || ' for this transfer', 'amount');
            v_live[i] := false;
        END IF;
    END LOOP;

    -- 5. Post every live tip: transfers, entries (each with its account's running balance and
    -- version), each account's balance once, the tip rows. One statement.
    FOR r IN
        WITH cmd AS (
            SELECT i, p_fan[i] AS fan, p_creator[i] AS creator, p_amount[i] AS amount,
                   p_currency[i] AS currency, v_fee[i] AS fee, p_message[i] AS message,
                   v_wallet[i] AS wallet, v_earnings[i] AS earnings, v_fee_account[i] AS fee_account
            FROM generate_subscripts(p_fan, 1) AS i WHERE v_live[i]
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
        ), base AS (
            SELECT a.id, a.balance, a.version, a.held, a.owner_id, a.kind FROM accounts a
            WHERE a.id IN (SELECT account_id FROM legs)
        ), running AS (
            SELECT l.*, b.owner_id, b.kind, b.held,
                   b.balance + sum(l.amount) OVER w AS balance_after,
                   b.version + row_number() OVER w AS version_after
            FROM legs l JOIN base b ON b.id = l.account_id
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
        )
        SELECT p.i, p.transfer_id, p.created_at,
               (SELECT string_agg('{"account_id":' || x.account_id || ',"owner_id":'
                       || coalesce(to_json(x.owner_id)::text, 'null') || ',"kind":'
                       || to_json(x.kind)::text || ',"amount":' || x.amount || '}',
                       ',' ORDER BY x.account_id)
                  FROM running x WHERE x.i = p.i) AS entries,
               (SELECT jsonb_build_object('account_id', x.account_id, 'kind', x.kind,
                       'currency', x.currency, 'balance', x.balance_after,
                       'available', x.balance_after - x.held, 'version', x.version_after)
                  FROM running x WHERE x.i = p.i AND x.leg = 1) AS wallet,
               (SELECT jsonb_build_object('account_id', x.account_id, 'kind', x.kind,
                       'currency', x.currency, 'balance', x.balance_after,
                       'available', x.balance_after - x.held, 'version', x.version_after)
                  FROM running x WHERE x.i = p.i AND x.leg = 2) AS earnings
        FROM posted p
    LOOP
        v_status[r.i] := 201;
        v_cur := to_json(p_currency[r.i])::text;
        v_body[r.i] := '{"id":' || r.transfer_id
            || ',"kind":"tip","fan_id":' || to_json(p_fan[r.i])::text
            || ',"creator_id":' || to_json(p_creator[r.i])::text
            || ',"amount":{"amount":' || p_amount[r.i] || ',"currency":' || v_cur
            || '},"fee":{"amount":' || v_fee[r.i] || ',"currency":' || v_cur
            || '},"net":{"amount":' || (p_amount[r.i] - v_fee[r.i]) || ',"currency":' || v_cur
            || '},"message":' || coalesce(to_json(p_message[r.i])::text, 'null')
            || ',"created_at":"' || hub_isoformat(r.created_at)
            || '","entries":[' || r.entries || ']}';
        -- The events of this tip, in order: tip.received (creator), tip.sent (fan),
        -- balance.updated (fan's wallet), balance.updated (creator's earnings).
        v_events[r.i] := jsonb_build_array(
            jsonb_build_object('user_id', p_creator[r.i], 'type', 'tip.received'),
            jsonb_build_object('user_id', p_fan[r.i], 'type', 'tip.sent'),
            jsonb_build_object(
                'user_id', p_fan[r.i], 'type', 'balance.updated', 'data', r.wallet),
            jsonb_build_object(
                'user_id', p_creator[r.i], 'type', 'balance.updated', 'data', r.earnings)
        );
        v_events[r.i] := jsonb_set(v_events[r.i], '{0,data}', jsonb_build_object(
            'tip_id', r.transfer_id, 'fan_id', p_fan[r.i], 'fan_name', v_fan_name[r.i],
            'creator_id', p_creator[r.i], 'amount', p_amount[r.i], 'fee', v_fee[r.i],
            'net', p_amount[r.i] - v_fee[r.i], 'currency', p_currency[r.i],
            'message', p_message[r.i], 'payment_id', NULL));
        v_events[r.i] := jsonb_set(v_events[r.i], '{1,data}', v_events[r.i] -> 0 -> 'data');
    END LOOP;

    -- 6. The events, numbered per user from the users' rows, locked in id order (after the
    -- accounts, as ledger.events.record_events is everywhere). One statement.
    IF EXISTS (SELECT 1 FROM unnest(v_events) AS e WHERE e IS NOT NULL) THEN
        FOR r IN
            WITH pending AS (
                SELECT i, x.n AS idx, x.e ->> 'user_id' AS user_id, x.e ->> 'type' AS type,
                       x.e -> 'data' AS data
                FROM generate_subscripts(p_fan, 1) AS i
                CROSS JOIN LATERAL jsonb_array_elements(v_events[i]) WITH ORDINALITY AS x(e, n)
                WHERE v_events[i] IS NOT NULL
            ), counts AS (
                SELECT user_id, count(*) AS n FROM pending GROUP BY user_id
            ), locked AS (
                SELECT u.id, c.n FROM users u JOIN counts c ON c.user_id = u.id
                ORDER BY u.id FOR UPDATE OF u
            ), bumped AS (
                UPDATE users SET event_seq = users.event_seq + l.n
                FROM locked l WHERE users.id = l.id
                RETURNING users.id, users.event_seq AS top, l.n
            ), inserted AS (
                INSERT INTO events (user_id, seq, type, data)
                SELECT p.user_id,
                       b.top - b.n + row_number() OVER (PARTITION BY p.user_id ORDER BY p.i, p.idx),
                       p.type, p.data
                FROM pending p JOIN bumped b ON b.id = p.user_id
                ORDER BY p.i, p.idx
                RETURNING id, user_id, seq, type, occurred_at, data
            )
            SELECT p.i, jsonb_agg(jsonb_build_object(
                       'id', e.id, 'user_id', e.user_id, 'seq', e.seq, 'type', e.type,
                       'occurred_at', e.occurred_at, 'data', e.data) ORDER BY e.id) AS events
            FROM inserted e
            JOIN pending p ON p.user_id = e.user_id AND p.type = e.type AND p.data = e.data
            GROUP BY p.i
        LOOP
            v_events[r.i] := r.events;
        END LOOP;
    END IF;

    -- 7. Every claimed key keeps its answer, committed with the money (or the refusal).
    UPDATE idempotency_keys k
    SET status_code = v_status[i], response = v_body[i], completed_at = now()
    FROM generate_subscripts(p_fan, 1) AS i
    WHERE v_claimed[i] AND k.caller_id = p_fan[i] AND k.key = p_key[i];

    RETURN QUERY
        SELECT i, nullif(v_status[i], 0), v_body[i], v_replayed[i], v_refusal[i], v_events[i]
        FROM generate_subscripts(p_fan, 1) AS i ORDER BY i;
END
$fn$;
"""

DOWNGRADE = """
DROP FUNCTION hub_wallet_tips(
    text[], text[], text[], text[], bigint[], text[], integer[], text[], text[]);
DROP FUNCTION hub_isoformat(timestamptz);
DROP FUNCTION hub_error_body(text, text, text);
"""


def upgrade() -> None:
    execute_script(UPGRADE)


def downgrade() -> None:
    execute_script(DOWNGRADE)
