"""Reconnect storm: 5,000 clients drop at once, 20,000 events are written and published while
they are away (Hub's real path: `record_events`, then `realtime.bus.publish`), and all reconnect
within 10 s with their last event id. Share recovered (recovered: true and exactly the missed
events, in order), time until all are recovered, and the database's load meanwhile
(pg_stat_database and pg_stat_user_tables deltas: a scan of the event table shows as seq_scan).

One hub process for all runs: the clients that recovered in one run drop again in the next.

    python -m bench.reconnect [--users 5000] [--events 20000] [--spread 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from typing import Any

from redis.asyncio import Redis

from bench.common import (
    JWT_SECRET,
    LoadClient,
    Services,
    cpu_between,
    create_users,
    log,
    raise_nofile,
    run,
    runs_wanted,
    scratch_file,
    start_hub,
    summarise,
    usage,
    write_result,
)

_STATS = """
SELECT d.xact_commit, d.xact_rollback, d.tup_returned, d.tup_fetched, d.blks_read, d.blks_hit,
       t.seq_scan, t.seq_tup_read, coalesce(t.idx_scan, 0) AS idx_scan,
       coalesce(t.idx_tup_fetch, 0) AS idx_tup_fetch
  FROM pg_stat_database d, pg_stat_user_tables t
 WHERE d.datname = current_database() AND t.relname = 'events'
"""


async def db_stats(database_url: str) -> dict[str, int]:
    import asyncpg

    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        row = await connection.fetchrow(_STATS)
    finally:
        await connection.close()
    return {key: int(value) for key, value in dict(row).items()}


async def write_while_away(
    database_url: str, redis_url: str, users: list[str], count: int, rng: random.Random
) -> dict[str, list[int]]:
    """`count` events to random users, committed and published; user → ids in order."""
    from ledger.db import make_engine, make_sessions, unit_of_work
    from ledger.events import record_events
    from realtime.publisher import Publisher

    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    redis = Redis.from_url(redis_url)
    publisher = Publisher(redis, sessions)
    written: dict[str, list[int]] = {}
    try:
        targets = [rng.choice(users) for _ in range(count)]
        for start in range(0, count, 2_000):
            async with unit_of_work(sessions) as uow:
                events = await record_events(
                    uow.session,
                    [
                        (u, "bench.event", {"n": start + i})
                        for i, u in enumerate(targets[start : start + 2_000])
                    ],
                )
            await publisher.publish(events)  # Hub's own: publish on the bus, mark published
            for event in events:
                written.setdefault(event.user_id, []).append(event.id)
    finally:
        await redis.aclose()
        await engine.dispose()
    return written


async def main_async(
    services: Services,
    runs: int,
    users_n: int,
    events_n: int,
    spread: float,
    profile: bool = False,
) -> dict[str, Any]:
    users = [f"rfan-{i:05d}" for i in range(users_n)]
    await create_users(services.database_url, users, "fan")
    server = start_hub(services)
    client = await LoadClient.start()
    results = []
    try:
        answer = await client.call(
            "connect", url=server.url, users=users, token_secret=JWT_SECRET, timeout=120
        )
        assert answer["connected"] == users_n, answer
        log(f"reconnect: {users_n} connected in {answer['seconds']:.0f} s")
        for run_index in range(runs):
            rng = random.Random(run_index)
            positions = (await client.call("positions"))["positions"]
            await client.call("close")
            await asyncio.sleep(2)  # the hub has seen every disconnect
            written = await write_while_away(
                services.database_url, services.redis_url, users, events_n, rng
            )
            await asyncio.sleep(1)
            await client.call("mark")
            stats0 = await db_stats(services.database_url)
            pg0, hub0 = usage(services.postgres_pids()), server.usage()
            recording = None
            if profile and run_index == 0:
                from bench.profiles import Recording

                recording = Recording(server.pid, "reconnect-hub", spread + 20)
            answer = await client.call(
                "connect",
                url=server.url,
                users=users,
                token_secret=JWT_SECRET,
                last_ids=positions,
                spread=spread,
                timeout=180,
            )
            pg1, hub1 = usage(services.postgres_pids()), server.usage()
            if recording is not None:
                recording.finish()
            await asyncio.sleep(1.5)  # backends flush their statistics within a second
            stats1 = await db_stats(services.database_url)
            with scratch_file(".json") as path:
                await client.call("dump", path=str(path))
                events = json.loads(path.read_text())
            got: dict[str, list[int]] = {}
            outcome: dict[str, Any] = {}
            for user, name, event_id, _at, extra in events:
                if name == "recovered":
                    outcome[user] = extra
                elif name == "bench.event":
                    got.setdefault(user, []).append(event_id)
            complete = sum(
                1
                for user in users
                if outcome.get(user, [False])[0] is True
                and got.get(user, []) == written.get(user, [])
            )
            delta = {key: stats1[key] - stats0[key] for key in stats0}
            wall = hub1.at - hub0.at
            result = {
                "reconnected": answer["connected"],
                "failed": answer["failed"],
                "errors": answer["errors"],
                "recovered_share": complete / users_n,
                "recovered_false": sum(1 for o in outcome.values() if o[0] is False),
                "seconds_until_all_recovered": answer["seconds_to_recovered"],
                "events_missed": sum(len(v) for v in written.values()),
                "events_replayed": sum(len(v) for v in got.values()),
                "events_table_seq_scans": delta["seq_scan"],
                "events_table_seq_rows": delta["seq_tup_read"],
                "events_table_index_scans": delta["idx_scan"],
                "db_transactions": delta["xact_commit"] + delta["xact_rollback"],
                "db_rows_returned": delta["tup_returned"],
                "db_rows_fetched": delta["tup_fetched"],
                "db_blocks_read": delta["blks_read"],
                "db_blocks_hit": delta["blks_hit"],
                "postgres_cpu_share": cpu_between(pg0, pg1) / wall,
                "hub_cpu_share": (hub1.cpu - hub0.cpu) / wall,
                "run": run_index,
            }
            results.append(result)
            log(
                f"reconnect run {run_index + 1}: {complete}/{users_n} recovered in "
                f"{result['seconds_until_all_recovered']} s, seq scans of events "
                f"{delta['seq_scan']}, {result['db_transactions']} transactions, PG CPU "
                f"{result['postgres_cpu_share']:.0%}, hub CPU {result['hub_cpu_share']:.0%}"
            )
    finally:
        await client.stop()
        server.stop()
    return {
        "users": users_n,
        "events": events_n,
        "spread_seconds": spread,
        "runs": results,
        "summary": summarise(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--spread", type=float, default=10)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--profile", action="store_true", help="py-spy the hub while reconnecting")
    args = parser.parse_args()
    raise_nofile()
    with Services() as services:
        payload = run(
            main_async(services, args.runs, args.users, args.events, args.spread, args.profile)
        )
    write_result("reconnect", payload)


if __name__ == "__main__":
    main()
