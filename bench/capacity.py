"""Capacity: 1,000 / 5,000 / 10,000 authenticated WebSocket clients on one hub process and on the
Node peer: time to connect all, server RSS per connection (KiB), server CPU per connect (ms).

    python -m bench.capacity [--levels 1000,5000,10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    JWT_SECRET,
    LoadClient,
    Server,
    Services,
    create_users,
    log,
    raise_nofile,
    run,
    runs_wanted,
    start_hub,
    start_node_peer,
    summarise,
    usage,
    write_result,
)

LEVELS = (1_000, 5_000, 10_000)
CONCURRENCY = 200  # connections being opened at once


async def measure(server: Server, users: list[str]) -> dict[str, Any]:
    client = await LoadClient.start()
    try:
        # One connection first, so pools and lazily built state do not count per connection.
        warm = await client.call(
            "connect", url=server.url, users=["cap-warm"], token_secret=JWT_SECRET
        )
        assert warm["connected"] == 1, warm
        await asyncio.sleep(1.0)
        before = usage([server.pid])
        client_before = usage([client.pid])
        answer = await client.call(
            "connect",
            url=server.url,
            users=users,
            token_secret=JWT_SECRET,
            concurrency=CONCURRENCY,
            timeout=120,
        )
        after = usage([server.pid])
        client_after = usage([client.pid])
        await asyncio.sleep(2.0)  # settled: buffers freed, presence refreshed
        settled = usage([server.pid])
        n = answer["connected"]
        return {
            "connected": n,
            "failed": answer["failed"],
            "errors": answer["errors"],
            "seconds_to_connect_all": answer["seconds"],
            "seconds_to_recovered_all": answer["seconds_to_recovered"],
            "connects_per_second": n / answer["seconds"] if answer["seconds"] else None,
            "rss_per_connection_kib": (settled.rss - before.rss) / n / 1024 if n else None,
            "rss_mib": settled.rss / 2**20,
            "cpu_per_connect_ms": (after.cpu - before.cpu) / n * 1000 if n else None,
            "server_cpu_share_during_connect": (after.cpu - before.cpu) / (after.at - before.at),
            "client_cpu_share_during_connect": (client_after.cpu - client_before.cpu)
            / (client_after.at - client_before.at),
        }
    finally:
        await client.stop()


async def main_async(
    services: Services, levels: list[int], runs: int, kinds: list[str]
) -> dict[str, Any]:
    if True:
        users = [f"cap-{i:05d}" for i in range(max(levels))]
        await create_users(services.database_url, [*users, "cap-warm"], "fan")
        results: dict[str, dict[int, list[dict[str, Any]]]] = {
            kind: {level: [] for level in levels} for kind in kinds
        }
        for run in range(runs):
            for level in levels:
                for kind in kinds:
                    server = start_hub(services) if kind == "hub" else start_node_peer(services)
                    with server:
                        started = time.monotonic()
                        result = await measure(server, users[:level])
                    result["run"] = run
                    results[kind][level].append(result)
                    log(
                        f"capacity {kind} {level}: {result['connected']} in "
                        f"{result['seconds_to_connect_all']:.2f} s, "
                        f"{result['rss_per_connection_kib']:.1f} KiB, "
                        f"{result['cpu_per_connect_ms']:.3f} ms CPU/connect, client "
                        f"{result['client_cpu_share_during_connect']:.0%} "
                        f"({time.monotonic() - started:.0f} s)"
                    )
    summary: dict[str, Any] = {
        kind: {str(level): summarise(results[kind][level]) for level in levels} for kind in kinds
    }
    return {
        "levels": levels,
        "runs": {k: {str(lv): r for lv, r in v.items()} for k, v in results.items()},
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--only", choices=["hub", "node"], default=None)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    kinds = [args.only] if args.only else ["hub", "node"]
    raise_nofile()
    with Services() as services:
        payload = run(main_async(services, levels, args.runs, kinds))
    write_result("capacity", payload)


if __name__ == "__main__":
    main()
