"""Capacity: 1,000 / 5,000 / 10,000 authenticated WebSocket clients on one hub process and on the
Node peer: time to connect all, server RSS per connection (KiB), server CPU per connect (ms).

Each run starts a fresh server and connects the levels cumulatively (1,000, then 4,000 more,
then 5,000 more), reading RSS and CPU at each level; the time to connect a level is the sum of
its steps' connect times (the pauses to read the figures are left out).

    python -m bench.capacity [--levels 1000,5000,10000] [--runs 3] [--only hub|node]
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
    gc_pause_max_ms,
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


async def measure(
    server: Server, users: list[str], levels: list[int], profile: bool = False
) -> dict[str, Any]:
    client = await LoadClient.start()
    out: dict[str, Any] = {}
    try:
        # One connection first, so pools and lazily built state do not count per connection.
        warm = await client.call(
            "connect", url=server.url, users=["cap-warm"], token_secret=JWT_SECRET
        )
        assert warm["connected"] == 1, warm
        await asyncio.sleep(1.0)
        base = server.usage()
        done, seconds, connected, server_cpu = 0, 0.0, 0, 0.0
        for level in levels:
            before = server.usage()
            client_before = usage([client.pid])
            recording = None
            if profile and server.name == "hub":
                from bench.profiles import Recording

                # About as long as the connects take (py-spy does not sample an idle loop).
                recording = Recording(server.pid, f"capacity-hub-{level}", (level - done) / 200)
            answer = await client.call(
                "connect",
                url=server.url,
                users=users[done:level],
                token_secret=JWT_SECRET,
                concurrency=CONCURRENCY,
                timeout=120,
            )
            after = server.usage()
            client_after = usage([client.pid])
            if recording is not None:
                recording.finish()
            done = level
            seconds += answer["seconds_to_recovered"] or answer["seconds"]
            connected += answer["connected"]
            server_cpu += after.cpu - before.cpu
            await asyncio.sleep(2.0)  # settled: handshake buffers freed, presence refreshed
            settled = server.usage()
            out[str(level)] = {
                "connected": connected,
                "failed": level - connected,
                "errors": answer["errors"],
                "seconds_to_connect_all": seconds,
                "connects_per_second": answer["connected"] / answer["seconds"]
                if answer["seconds"]
                else None,
                "rss_per_connection_kib": (settled.rss - base.rss) / connected / 1024
                if connected
                else None,
                "rss_mib": settled.rss / 2**20,
                "cpu_per_connect_ms": server_cpu / connected * 1000 if connected else None,
                "server_cpu_share_during_connect": (after.cpu - before.cpu)
                / (after.at - before.at),
                "client_cpu_share_during_connect": (client_after.cpu - client_before.cpu)
                / (client_after.at - client_before.at),
                "gc_pause_max_ms": gc_pause_max_ms(server),  # since start, this level included
            }
            log(
                f"capacity {server.name} {level}: {connected} in {seconds:.1f} s, "
                f"{out[str(level)]['rss_per_connection_kib']:.1f} KiB/conn, "
                f"{out[str(level)]['cpu_per_connect_ms']:.2f} ms CPU/connect, client "
                f"{out[str(level)]['client_cpu_share_during_connect']:.0%}"
            )
    finally:
        await client.stop()
    return out


async def main_async(
    services: Services, levels: list[int], runs: int, kinds: list[str], profile: bool = False
) -> dict[str, Any]:
    users = [f"cap-{i:05d}" for i in range(max(levels))]
    await create_users(services.database_url, [*users, "cap-warm"], "fan")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for run_index in range(runs):
        for kind in kinds:
            server = start_hub(services) if kind == "hub" else start_node_peer(services)
            started = time.monotonic()
            with server:
                result = await measure(server, users, levels, profile and run_index == 0)
            result["run"] = run_index
            results[kind].append(result)
            log(f"capacity {kind} run {run_index + 1}: {time.monotonic() - started:.0f} s")
    return {
        "levels": levels,
        "runs": results,
        "summary": {kind: summarise(results[kind]) for kind in kinds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--only", choices=["hub", "node"], default=None)
    parser.add_argument("--profile", action="store_true", help="py-spy the hub while connecting")
    args = parser.parse_args()
    levels = sorted(int(x) for x in args.levels.split(","))
    kinds = [args.only] if args.only else ["hub", "node"]
    raise_nofile()
    with Services() as services:
        payload = run(main_async(services, levels, args.runs, kinds, args.profile))
    write_result("capacity", payload)


if __name__ == "__main__":
    main()
