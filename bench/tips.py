"""Tips end to end: `POST /api/v1/tips` (JWT, Idempotency-Key) from many fans (a) to many
creators and (b) all to one creator; every creator holds a socket. Throughput at saturation
(closed loop), then HTTP p50/p99 and p99 from request to `tip.received` on the creator's socket
at half that rate (open loop). Ratios against pgbench's posting rate on the same server.

(c) is the other wallet payment, pay-per-view: `POST /api/v1/content/{id}/purchase` from the
same fans, each buying items of 20 creators (each request a new item for its fan), timed to
`ppv.sold` on the creator's socket. The figures named "per tip" are per purchase there.

    python -m bench.tips [--seconds 10] [--workers 32] [--runs 3] [--hub-workers 1]

Also counted at saturation: PostgreSQL transactions per 100 tips (pg_stat_database's commits
and rollbacks of Hub's database; group commit shows here).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from typing import Any

from bench.common import (
    JWT_SECRET,
    LoadClient,
    Server,
    Services,
    cpu_between,
    create_users,
    log,
    percentile,
    raise_nofile,
    run,
    runs_wanted,
    scratch_file,
    start_hub,
    summarise,
    token,
    usage,
    write_result,
)
from bench.httpclient import HttpConnection, Load, closed_loop, open_loop

FANS = 500
CREATORS = 200
AMOUNT = 100  # kobo
SELLERS = 20  # creators selling items in (c)
ITEMS = 80  # new items per run of (c): FANS x ITEMS purchases possible
FUNDING = 2 * 10**9  # below 2**31: see docs/benchmarks.md (post_transfer binds int4)


async def webhook_endpoint(database_url: str) -> None:
    """An endpoint of the default app that wants every event: each tip then writes its events'
    deliveries too (the trigger of migration 0019), as a platform with webhooks pays. No worker
    runs here, so nothing is sent: what is measured is the hub's and PostgreSQL's side."""
    import asyncpg

    from ledger.db import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO webhook_endpoints (app_id, url, secret) "
            "VALUES ('default', 'http://127.0.0.1:9/hook', 'whsec_' || md5(random()::text))"
        )
    finally:
        await connection.close()


async def fund(database_url: str, fans: list[str]) -> None:
    from ledger.db import make_engine, make_sessions, unit_of_work
    from ledger.funding import fund_wallet_for_development
    from ledger.money import Money

    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    try:
        for start in range(0, len(fans), 250):
            async with unit_of_work(sessions) as uow:
                for fan in fans[start : start + 250]:
                    await fund_wallet_for_development(
                        uow.session, fan, Money(FUNDING, "NGN"), reference=f"bench:{fan}"
                    )
    finally:
        await engine.dispose()


def tipper(fans: list[str], creators: list[str]) -> Any:
    tokens = {fan: token(fan, "fan") for fan in fans}

    async def send(connection: HttpConnection, n: int) -> tuple[int, bytes, Any]:
        fan = fans[n % len(fans)]
        creator = creators[(n * 7919) % len(creators)]
        body = json.dumps(
            {"creator_id": creator, "amount": AMOUNT, "currency": "NGN", "message": "bench"}
        ).encode()
        status, payload = await connection.request(
            "POST",
            "/api/v1/tips",
            {
                "Authorization": f"Bearer {tokens[fan]}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            },
            body,
        )
        return status, payload, creator

    return send


def purchaser(fans: list[str], items: list[int]) -> Any:
    """Each call buys the next (fan, item) pair: fans in turn, then the next item."""
    tokens = {fan: token(fan, "fan") for fan in fans}
    counter = itertools.count()

    async def send(connection: HttpConnection, n: int) -> tuple[int, bytes, Any]:
        k = next(counter)
        fan, item = fans[k % len(fans)], items[(k // len(fans)) % len(items)]
        status, payload = await connection.request(
            "POST",
            f"/api/v1/content/{item}/purchase",
            {"Authorization": f"Bearer {tokens[fan]}", "Idempotency-Key": uuid.uuid4().hex},
            b"",
        )
        return status, payload, item

    return send


async def new_items(database_url: str, sellers: list[str]) -> list[int]:
    """ITEMS new items, spread over `sellers`, priced AMOUNT."""
    import asyncpg

    from ledger.db import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "INSERT INTO content (creator_id, title, price, currency)"
            " SELECT ($1::text[])[1 + k % cardinality($1::text[])], 'bench item ' || k, $2, 'NGN'"
            " FROM generate_series(0, $3 - 1) AS k RETURNING id",
            sellers,
            AMOUNT,
            ITEMS,
        )
        return [row["id"] for row in rows]
    finally:
        await connection.close()


async def warm(server: Server, fans: list[str]) -> None:
    """Every fan once, so first-sight work (creating the user in this process) is not timed."""
    connection = HttpConnection("127.0.0.1", server.port)
    try:
        for fan in fans:
            await connection.request(
                "GET", "/api/v1/wallet", {"Authorization": f"Bearer {token(fan, 'fan')}"}
            )
    finally:
        connection.close()


def transfer_ids(load: Load) -> dict[int, int]:
    """transfer id → scheduled start (ns) of the request that made it."""
    out = {}
    for outcome in load.ok(201):
        out[int(json.loads(outcome.body)["id"])] = outcome.scheduled_ns
    return out


async def transactions(database_url: str) -> int:
    """Commits and rollbacks of the database so far (as far as the backends have reported)."""
    import asyncpg

    from ledger.db import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        value = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return int(value)
    finally:
        await connection.close()


async def shape(
    services: Services,
    name: str,
    fans: list[str],
    creators: list[str],
    send: Any,
    alert: str,
    seconds: float,
    workers: int,
    profile: bool,
    hub_workers: int = 1,
) -> dict[str, Any]:
    server = start_hub(services, HUB_WORKERS=str(hub_workers))
    client = await LoadClient.start()
    try:
        answer = await client.call(
            "connect", url=server.url, users=creators, role="creator", token_secret=JWT_SECRET
        )
        assert answer["connected"] == len(creators), answer
        await warm(server, fans)
        recording = None
        if profile:
            from bench.profiles import Recording

            recording = Recording(server.pid, f"tips-{name}", seconds)
        await asyncio.sleep(1.5)  # backends report their counts at most once a second
        xacts_before = await transactions(services.database_url)
        before = server.usage()
        pg_before = usage(services.postgres_pids())
        saturated = await closed_loop("127.0.0.1", server.port, send, workers, seconds)
        after = server.usage()
        pg_after = usage(services.postgres_pids())
        await asyncio.sleep(1.5)
        xacts = await transactions(services.database_url) - xacts_before - 2  # our own reads
        if recording is not None:
            recording.finish()
        created = saturated.ok(201)
        throughput = len(created) / saturated.seconds
        sat_latencies = [o.latency_ms for o in created]
        statuses: dict[str, int] = {}
        for outcome in saturated.outcomes:
            statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
        await asyncio.sleep(2)
        await client.call("mark")
        half = await open_loop("127.0.0.1", server.port, send, throughput / 2, seconds)
        ids = transfer_ids(half)
        await asyncio.sleep(2)
        with scratch_file(".json") as path:
            await client.call("dump", path=str(path))
            events = json.loads(path.read_text())
        alerts = [
            (at - ids[tip]) / 1e6
            for _user, event, _id, at, tip in events
            if event == alert and tip in ids
        ]
        half_ok = [o.latency_ms for o in half.ok(201)]
        wall = after.at - before.at
        result = {
            "throughput_per_s": throughput,
            "saturation_statuses": statuses,
            "saturation_errors": len(saturated.errors),
            "saturation_p50_ms": percentile(sat_latencies, 50),
            "saturation_p99_ms": percentile(sat_latencies, 99),
            "hub_cpu_share_at_saturation": (after.cpu - before.cpu) / wall,
            "postgres_cpu_share_at_saturation": cpu_between(pg_before, pg_after) / wall,
            "hub_cpu_per_tip_ms": (after.cpu - before.cpu) / len(created) * 1000
            if created
            else None,
            "pg_transactions_per_100_tips": xacts / len(created) * 100 if created else None,
            "hub_workers": hub_workers,
            "half_rate_per_s": throughput / 2,
            "half_sent": len(half.outcomes) + len(half.errors),
            "half_created": len(half_ok),
            "half_p50_ms": percentile(half_ok, 50),
            "half_p95_ms": percentile(half_ok, 95),
            "half_p99_ms": percentile(half_ok, 99),
            "half_tip_received": len(alerts),
            "half_tip_received_p50_ms": percentile(alerts, 50),
            "half_tip_received_p99_ms": percentile(alerts, 99),
        }
        log(
            f"{name}: {throughput:.0f}/s at saturation ({statuses}), half load "
            f"p50 {result['half_p50_ms']:.1f} ms p99 {result['half_p99_ms']:.1f} ms, "
            f"{alert} p99 {result['half_tip_received_p99_ms']} ms "
            f"({len(alerts)}/{len(half_ok)}), hub CPU {result['hub_cpu_share_at_saturation']:.0%}"
        )
        return result
    finally:
        await client.stop()
        server.stop()


async def main_async(
    services: Services,
    runs: int,
    seconds: float,
    workers: int,
    profile: bool,
    hub_workers: int,
    only: list[str] | None = None,
    webhooks: bool = False,
) -> dict[str, Any]:
    if webhooks:
        await webhook_endpoint(services.database_url)
    fans = [f"tfan-{i:04d}" for i in range(FANS)]
    creators = [f"tcreator-{i:04d}" for i in range(CREATORS)]
    await create_users(services.database_url, fans, "fan")
    await create_users(services.database_url, creators, "creator")
    await fund(services.database_url, fans)
    sellers = creators[:SELLERS]
    shapes = {"many_creators": creators, "one_creator": creators[:1], "purchases": sellers}
    shapes = {name: targets for name, targets in shapes.items() if not only or name in only}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in shapes}
    for run_index in range(runs):
        for name, targets in shapes.items():
            started = time.monotonic()
            if name == "purchases":
                items = await new_items(services.database_url, sellers)
                send, alert = purchaser(fans, items), "ppv.sold"
            else:
                send, alert = tipper(fans, targets), "tip.received"
            result = await shape(
                services,
                name,
                fans,
                targets,
                send,
                alert,
                seconds,
                workers,
                profile and run_index == 0,
                hub_workers,
            )
            result["run"] = run_index
            results[name].append(result)
            log(f"tips {name} run {run_index + 1}: {time.monotonic() - started:.0f} s")
    return {
        "fans": FANS,
        "creators": CREATORS,
        "workers": workers,
        "hub_workers": hub_workers,
        "seconds": seconds,
        "runs": results,
        "summary": {name: summarise(results[name]) for name in shapes},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--profile", action="store_true", help="py-spy the hub at saturation")
    parser.add_argument("--hub-workers", type=int, default=1, help="HUB_WORKERS of the hub")
    parser.add_argument("--shapes", help="some of many_creators,one_creator,purchases (all)")
    parser.add_argument(
        "--webhooks", action="store_true", help="with a webhook endpoint wanting every event"
    )
    args = parser.parse_args()
    only = args.shapes.split(",") if args.shapes else None
    raise_nofile()
    with Services() as services:
        payload = run(
            main_async(
                services,
                args.runs,
                args.seconds,
                args.workers,
                args.profile,
                args.hub_workers,
                only,
                args.webhooks,
            )
        )
    name = "tips" if args.hub_workers == 1 else f"tips-{args.hub_workers}-workers"
    if args.webhooks:
        name += "-webhooks"
    write_result(name if only is None else f"{name}-{'-'.join(only)}", payload)


if __name__ == "__main__":
    main()
