"""Fan-out and broadcast: 5,000 users connected; events to random users at 500 / 2,000 / 5,000
per second for 15 s each, then one event to all 5,000 at once. Hub and the Node peer, the same
load client.

Hub's path is its real one: the event rows are written by `ledger.events.record_events` (and
marked published, so the sweeper leaves them alone) before each level starts, then published
at the level's rate with `realtime.bus.publish`; the clock of an event starts right before its
publish. The Node peer gets the same envelopes through its Redis adapter, as
@socket.io/redis-emitter sends them (bench/emitter.py).

    python -m bench.fanout [--rates 500,2000,5000] [--seconds 15] [--users 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from bench import emitter
from bench.common import (
    JWT_SECRET,
    LoadClient,
    Server,
    Services,
    create_users,
    gc_pause_max_ms,
    log,
    percentile,
    raise_nofile,
    run,
    runs_wanted,
    scratch_file,
    start_hub,
    start_node_peer,
    summarise,
    usage,
    write_result,
)

RATES = (500, 2_000, 5_000, 10_000)
TICK = 0.005  # seconds between publishes (events due by then go in one pipeline)
DRAIN = 20  # seconds after the last publish that still count as delivered
DATA = {"amount": 50_000, "fee": 5_000, "net": 45_000, "currency": "NGN", "message": "bench"}
CREATOR = "bench-creator"  # every client views this creator's page (Hub: its public channel)


class HubSide:
    """Writes event rows through the ledger and publishes them on Hub's bus."""

    name = "hub"

    def __init__(self, services: Services) -> None:
        from ledger.db import make_engine, make_sessions

        self.engine = make_engine(services.database_url)
        self.sessions = make_sessions(self.engine)
        self.redis = Redis.from_url(services.redis_url)

    async def prepare(self, users: list[str], batch: int = 2_000) -> list[Any]:
        from ledger.db import unit_of_work
        from ledger.events import mark_published, record_events

        written: list[Any] = []
        for start in range(0, len(users), batch):
            chunk = users[start : start + batch]
            async with unit_of_work(self.sessions) as uow:
                events = await record_events(
                    uow.session, [(u, "bench.event", {**DATA, "n": i}) for i, u in enumerate(chunk)]
                )
                await mark_published(uow.session, [e.id for e in events])
            written.extend(events)
        return written

    @staticmethod
    def ident(event: Any) -> int:
        return int(event.id)

    async def publish(self, events: list[Any]) -> None:
        from realtime import bus

        await bus.publish(self.redis, events)

    async def broadcast_one(self) -> tuple[int, int]:
        """One tip for the creator every client views: one event row, one bus message, shown
        to every viewer as `public.tip`. Returns (id, publish ns)."""
        from sqlalchemy import text

        from ledger.db import unit_of_work
        from ledger.events import mark_published, record_events
        from realtime import bus

        tip = {**DATA, "tip_id": 1, "fan_name": "Bench", "creator_id": CREATOR}
        async with unit_of_work(self.sessions) as uow:
            events = await record_events(uow.session, [(CREATOR, "tip.received", tip)])
            # no real tip 1: take back the receipt the events' trigger queued for it
            await uow.session.execute(text("DELETE FROM outbox WHERE topic = 'tip' AND ref = 1"))
            await mark_published(uow.session, [e.id for e in events])
        at = time.monotonic_ns()
        await bus.publish(self.redis, events)
        return events[0].id, at

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()


class NodeSide:
    """The same envelopes, emitted to the peer's rooms through its Redis adapter."""

    name = "node"

    def __init__(self, services: Services) -> None:
        self.redis = Redis.from_url(services.redis_url)
        self.next_id = 1
        self.seqs: dict[str, int] = {}

    async def prepare(self, users: list[str]) -> list[tuple[str, int, str, bytes]]:
        prepared = []
        now = datetime.now(UTC).isoformat()
        for i, user in enumerate(users):
            seq = self.seqs[user] = self.seqs.get(user, 0) + 1
            envelope = {
                "id": self.next_id,
                "seq": seq,
                "type": "bench.event",
                "occurred_at": now,
                "data": {**DATA, "n": i},
            }
            channel, payload = emitter.message("bench.event", envelope, f"user:{user}")
            prepared.append((user, self.next_id, channel, payload))
            self.next_id += 1
        return prepared

    @staticmethod
    def ident(event: Any) -> int:
        return int(event[1])

    async def publish(self, events: list[Any]) -> None:
        await emitter.emit(self.redis, [(channel, payload) for _, _, channel, payload in events])

    async def broadcast_one(self) -> tuple[int, int]:
        """One `io.emit` to every socket; returns (id, publish ns)."""
        event_id = self.next_id
        self.next_id += 1
        envelope = {
            "id": event_id,
            "seq": 0,
            "type": "bench.event",
            "occurred_at": datetime.now(UTC).isoformat(),
            "data": DATA,
        }
        channel, payload = emitter.message("bench.event", envelope, None)
        at = time.monotonic_ns()
        await self.redis.publish(channel, payload)
        return event_id, at

    async def close(self) -> None:
        await self.redis.aclose()


async def received(client: LoadClient) -> tuple[list[list[Any]], dict[str, Any]]:
    """The events since the last mark, and the client's CPU share since then."""
    with scratch_file(".json") as path:
        answer = await client.call("dump", path=str(path))
        return json.loads(path.read_text()), answer


async def drain(client: LoadClient, expected: int, limit: float) -> None:
    """Wait until `expected` events arrived, or nothing new came for 2 s, or `limit` passed."""
    deadline = time.monotonic() + limit
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = (await client.call("count"))["events"]
        if count >= expected:
            return
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 2:
            return
        await asyncio.sleep(0.1)


async def quiesce(client: LoadClient, limit: float = 90) -> float:
    """Wait until the server has caught up (no event arrived for 2 s), at most `limit` s:
    a level the server could not keep up with must not spill into the next one."""
    started = time.monotonic()
    last, still_since = -1, time.monotonic()
    while time.monotonic() - started < limit:
        count = (await client.call("count"))["events"]
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since >= 2:
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def latency_stats(
    published: dict[int, int], events: list[list[Any]], window_end_ns: int
) -> dict[str, Any]:
    first: dict[int, int] = {}
    copies = 0
    for _user, name, event_id, at, _extra in events:
        if name == "recovered" or event_id not in published:
            continue
        if event_id in first:
            copies += 1
            continue
        first[event_id] = at
    latencies = [(at - published[i]) / 1e6 for i, at in first.items()]
    sent = len(published)
    return {
        "sent": sent,
        "delivered": len(first),
        "delivered_share": len(first) / sent if sent else None,
        "duplicates": copies,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
        "late_after_window_s": (max(first.values()) - window_end_ns) / 1e9 if first else None,
    }


async def level(
    idle_share: float,
    side: HubSide | NodeSide,
    server: Server,
    client: LoadClient,
    redis_pids: list[int],
    users: list[str],
    rate: int,
    seconds: float,
    rng: random.Random,
) -> dict[str, Any]:
    total = int(rate * seconds)
    targets = [rng.choice(users) for _ in range(total)]
    prepared = await side.prepare(targets)
    await quiesce(client)  # the previous level's backlog is delivered, the writes settled
    await client.call("mark")
    published: dict[int, int] = {}
    server0, redis0, self0 = server.usage(), usage(redis_pids), time.process_time()
    start = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int(rate * (time.monotonic() - start)) + 1)
        if due > sent:
            batch = prepared[sent:due]
            at = time.monotonic_ns()
            await side.publish(batch)
            for event in batch:
                published[side.ident(event)] = at
            sent = due
        await asyncio.sleep(TICK)
    window_end = time.monotonic_ns()
    publish_seconds = time.monotonic() - start
    await drain(client, total, limit=DRAIN)
    server1, redis1 = server.usage(), usage(redis_pids)
    driver_cpu = time.process_time() - self0
    events, dumped = await received(client)
    answer = await client.call("count")
    stats = latency_stats(published, events, window_end)
    wall = server1.at - server0.at
    cpu = server1.cpu - server0.cpu
    stats.update(
        rate=rate,
        achieved_rate=total / publish_seconds,
        server_cpu_per_1000_events_ms=cpu / total * 1e6 if total else None,
        server_cpu_share=cpu / wall,
        # less what the server burns idle with the same sockets (presence, pings): the events' own
        server_cpu_per_1000_events_net_ms=max(0.0, cpu - idle_share * wall) / total * 1e6
        if total
        else None,
        redis_cpu_share=(redis1.cpu - redis0.cpu) / wall,
        driver_cpu_share=driver_cpu / wall,
        client_cpu_share=dumped["client_cpu_share"],
        open_connections=answer["open"],
    )
    return stats


async def broadcast(
    side: HubSide | NodeSide, server: Server, client: LoadClient, users: list[str]
) -> dict[str, Any]:
    """One event to all, two ways. Per user: one event row per user, published together (the
    peer: one emit per user's room). For everyone at once: Hub, one tip of the creator every
    client views, on its public channel; the peer, one `io.emit`."""
    out: dict[str, Any] = {}
    prepared = await side.prepare(list(users))
    await quiesce(client)
    await client.call("mark")
    before = server.usage()
    at = time.monotonic_ns()
    await side.publish(prepared)
    published = {side.ident(e): at for e in prepared}
    await drain(client, len(users), limit=30)
    after = server.usage()
    events, _ = await received(client)
    stats = latency_stats(published, events, at)
    out["targeted_last_ms"] = stats["max_ms"]
    out["targeted_p50_ms"] = stats["p50_ms"]
    out["targeted_delivered_share"] = stats["delivered_share"]
    out["targeted_server_cpu_ms"] = (after.cpu - before.cpu) * 1000
    await asyncio.sleep(0.5)
    await client.call("mark")
    before = server.usage()
    event_id, at = await side.broadcast_one()
    await drain(client, len(users), limit=30)
    after = server.usage()
    events, _ = await received(client)
    times = [(e[3] - at) / 1e6 for e in events if e[2] == event_id]
    out["one_emit_last_ms"] = max(times) if times else None
    out["one_emit_p50_ms"] = percentile(times, 50)
    out["one_emit_delivered_share"] = len(times) / len(users)
    out["one_emit_duplicates"] = len(times) - len({e[0] for e in events if e[2] == event_id})
    out["one_emit_server_cpu_ms"] = (after.cpu - before.cpu) * 1000
    return out


async def run_levels(
    kind: str,
    side: HubSide | NodeSide,
    server: Server,
    client: LoadClient,
    services: Services,
    users: list[str],
    rates: list[int],
    seconds: float,
    seed: int,
    profile: bool,
) -> dict[str, Any]:
    rng = random.Random(seed)
    result: dict[str, Any] = {}
    await quiesce(client)
    idle0 = server.usage()
    await asyncio.sleep(3)
    idle1 = server.usage()
    result["idle_server_cpu_share"] = (idle1.cpu - idle0.cpu) / (idle1.at - idle0.at)
    for rate in rates:
        recording = None
        if profile and kind == "hub":
            from bench.profiles import Recording

            recording = Recording(server.pid, f"fanout-hub-{rate}", seconds + 2)
        stats = await level(
            result["idle_server_cpu_share"],
            side,
            server,
            client,
            services.redis_pids(),
            users,
            rate,
            seconds,
            rng,
        )
        if recording is not None:
            recording.finish()
        result[str(rate)] = stats
        log(
            f"fanout {kind} {rate}/s: {stats['delivered']}/{stats['sent']} delivered, "
            f"{stats['duplicates']} duplicates, p50 {stats['p50_ms']:.1f} ms, "
            f"p99 {stats['p99_ms']:.1f} ms, max {stats['max_ms']:.0f} ms, "
            f"{stats['server_cpu_per_1000_events_ms']:.0f} ms CPU/1000, "
            f"server {stats['server_cpu_share']:.0%}, client {stats['client_cpu_share']:.0%}, "
            f"driver {stats['driver_cpu_share']:.0%}"
        )
        await asyncio.sleep(1)
    result["broadcast"] = await broadcast(side, server, client, users)
    log(f"broadcast {kind}: {result['broadcast']}")
    result["gc_pause_max_ms"] = gc_pause_max_ms(server)  # since start: connects, runs so far
    return result


async def main_async(
    services: Services,
    runs: int,
    users_n: int,
    rates: list[int],
    seconds: float,
    kinds: list[str],
    profile: bool,
) -> dict[str, Any]:
    """One server at a time (the other is not running, so it takes no CPU from the measured
    one): it is started, gets its 5,000 clients (about a minute for Hub), runs every level and
    the broadcast `runs` times, and is stopped."""
    users = [f"fan-{i:05d}" for i in range(users_n)]
    await create_users(services.database_url, users, "fan")
    await create_users(services.database_url, [CREATOR], "creator")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for kind in kinds:
        side: HubSide | NodeSide = HubSide(services) if kind == "hub" else NodeSide(services)
        server = start_hub(services) if kind == "hub" else start_node_peer(services)
        client = await LoadClient.start()
        try:
            answer = await client.call(
                "connect",
                url=server.url,
                users=users,
                token_secret=JWT_SECRET,
                viewing=CREATOR,
                timeout=120,
            )
            log(f"fanout {kind}: {answer['connected']} connected in {answer['seconds']:.1f} s")
            if answer["connected"] != users_n:
                raise RuntimeError(f"{kind}: only {answer['connected']} connected: {answer}")
            for run_index in range(runs):
                result = await run_levels(
                    kind, side, server, client, services, users, rates, seconds,
                    seed=run_index, profile=profile and run_index == 0,
                )  # fmt: skip
                result["run"] = run_index
                result["open_connections"] = (await client.call("count"))["open"]
                results[kind].append(result)
        finally:
            await client.stop()
            server.stop()
            await side.close()
    return {
        "users": users_n,
        "rates": rates,
        "seconds": seconds,
        "runs": results,
        "summary": {kind: summarise(results[kind]) for kind in kinds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=runs_wanted())
    parser.add_argument("--only", choices=["hub", "node"], default=None)
    parser.add_argument("--profile", action="store_true", help="py-spy the hub at each rate")
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["hub", "node"]
    rates = [int(x) for x in args.rates.split(",")]
    raise_nofile()
    with Services() as services:
        payload = run(
            main_async(services, args.runs, args.users, rates, args.seconds, kinds, args.profile)
        )
    write_result("fanout", payload)


if __name__ == "__main__":
    main()
